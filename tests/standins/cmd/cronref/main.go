// Command cronref is the reference for the project's Python cron port
// (image/sqlserver_backup/go_robfig_cron.py): it reads one expression per line on stdin and prints,
// one JSON line each, what robfig/cron v3's standard parser makes of it when
// called the way gocron v1.18.0 (GoBackup v3.1.1's scheduler) calls it:
//
//	{"expr": "...", "ok": true, "error": "", "next": ["2026-03-29T01:00:00Z", ...]}
//
// next holds up to -n activation times after -start (RFC 3339, or the
// CRONREF_START environment variable), computed in time.Local (set TZ) and
// printed in UTC; it stops early when robfig finds no further time.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

type result struct {
	Expr  string   `json:"expr"`
	OK    bool     `json:"ok"`
	Error string   `json:"error"`
	Next  []string `json:"next"`
}

// gocronSpec is what gocron's Scheduler.Cron hands to cron.ParseStandard:
// the expression prefixed with the scheduler's location unless it names one.
func gocronSpec(expression string, location *time.Location) string {
	if strings.HasPrefix(expression, "TZ=") || strings.HasPrefix(expression, "CRON_TZ=") {
		return expression
	}
	return fmt.Sprintf("CRON_TZ=%s %s", location.String(), expression)
}

// parse returns robfig's error, or a panic turned into one (robfig slices a
// TZ= prefix without a following space out of range).
func parse(spec string) (schedule cron.Schedule, err error) {
	defer func() {
		if recovered := recover(); recovered != nil {
			schedule, err = nil, fmt.Errorf("panic: %v", recovered)
		}
	}()
	return cron.ParseStandard(spec)
}

func evaluate(expression string, start time.Time, count int) result {
	out := result{Expr: expression, Next: []string{}}
	schedule, err := parse(gocronSpec(expression, time.Local))
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.OK = true
	at := start.In(time.Local) // gocron computes from time.Now() in its location
	for i := 0; i < count; i++ {
		at = schedule.Next(at)
		if at.IsZero() {
			break
		}
		out.Next = append(out.Next, at.UTC().Format(time.RFC3339))
	}
	return out
}

func main() {
	startText := flag.String("start", os.Getenv("CRONREF_START"), "start time, RFC 3339 (default: CRONREF_START)")
	count := flag.Int("n", 5, "activation times to print per expression")
	flag.Parse()
	start, err := time.Parse(time.RFC3339Nano, *startText)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cronref: -start or CRONREF_START must be an RFC 3339 time:", err)
		os.Exit(2)
	}
	scanner := bufio.NewScanner(os.Stdin)
	encoder := json.NewEncoder(os.Stdout)
	for scanner.Scan() {
		if err := encoder.Encode(evaluate(scanner.Text(), start, *count)); err != nil {
			fmt.Fprintln(os.Stderr, "cronref:", err)
			os.Exit(1)
		}
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "cronref:", err)
		os.Exit(1)
	}
}

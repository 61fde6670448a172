package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-co-op/gocron"
)

// The scheduler is gocron v1.18, as upstream: `cron` goes through robfig/cron
// v3's standard parser in local time; `every` through gocron's Every(string),
// a Go duration only ("1day" and `at:` fail to register); without `at` the
// first run is one interval after start. Jobs run one at a time behind a
// mutex; "Performing..." is logged before waiting for it.
var (
	cronScheduler *gocron.Scheduler
	extendedUnits = regexp.MustCompile(`^(\d+)\s*(day|days|d|week|weeks|w|month|months)$`)
)

// startDelay is how far the first `every` run is put off: gocron rejects
// what time.ParseDuration rejects anyway, so only the plain case matters.
func startDelay(every string) time.Duration {
	if duration, err := time.ParseDuration(every); err == nil {
		return duration
	}
	match := extendedUnits.FindStringSubmatch(strings.ToLower(every))
	if match == nil {
		return 0
	}
	count, _ := strconv.Atoi(match[1])
	day := 24 * time.Hour
	switch match[2] {
	case "week", "weeks", "w":
		return time.Duration(count) * 7 * day
	case "month", "months":
		return time.Duration(count) * 30 * day
	}
	return time.Duration(count) * day
}

func startScheduler() {
	lg := tag("Scheduler")
	cronScheduler = gocron.NewScheduler(time.Local)
	var lock sync.Mutex
	for _, entry := range models {
		if !entry.schedule.Enabled {
			continue
		}
		lg.info(fmt.Sprintf("Register %s with (%s)", entry.name, entry.schedule.String()))
		var job *gocron.Scheduler
		if entry.schedule.Cron != "" {
			job = cronScheduler.Cron(entry.schedule.Cron)
		} else {
			job = cronScheduler.Every(entry.schedule.Every)
			if entry.schedule.At != "" {
				job = job.At(entry.schedule.At)
			} else {
				job = job.StartAt(time.Now().Add(startDelay(entry.schedule.Every)))
			}
		}
		_, err := job.Do(func(entry modelConfig) {
			defer lock.Unlock()
			jobLogger := tag("Scheduler: " + entry.name)
			jobLogger.info("Performing...")
			lock.Lock()
			if err := perform(entry); err != nil {
				jobLogger.errorf("Failed to perform: %s", err.Error())
			}
			jobLogger.info("Done.")
		}, entry)
		if err != nil {
			lg.errorf("Failed to register job func: %s", err.Error())
		}
	}
	cronScheduler.StartAsync()
}

func stopScheduler() {
	if cronScheduler != nil {
		cronScheduler.Stop()
	}
}

func init() {
	onConfigChanges = append(onConfigChanges, func() {
		tag("Scheduler").info("Reloading...")
		stopScheduler()
		startScheduler()
	})
}

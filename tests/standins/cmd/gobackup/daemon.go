package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// metrics mirrors GoBackup's Prometheus metrics (namespace gobackup).
type metrics struct {
	mu       sync.Mutex
	attempts map[[2]string]int
	last     map[[2]string]float64
	sum      map[string]float64
	count    map[string]int
}

var runMetrics = &metrics{attempts: map[[2]string]int{}, last: map[[2]string]float64{}, sum: map[string]float64{}, count: map[string]int{}}

func recordAttempt(model string, success bool, duration time.Duration) {
	status := "failure"
	if success {
		status = "success"
	}
	runMetrics.mu.Lock()
	defer runMetrics.mu.Unlock()
	runMetrics.attempts[[2]string{model, status}]++
	runMetrics.last[[2]string{model, status}] = float64(time.Now().Unix())
	runMetrics.sum[model] += duration.Seconds()
	runMetrics.count[model]++
}

func (m *metrics) write(writer http.ResponseWriter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lines := []string{"# HELP gobackup_total_attempts Total attempts of backup", "# TYPE gobackup_total_attempts counter"}
	keys := make([][2]string, 0, len(m.attempts))
	for key := range m.attempts {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, key := range keys {
		lines = append(lines, fmt.Sprintf("gobackup_total_attempts{model=%q,status=%q} %d", key[0], key[1], m.attempts[key]))
	}
	lines = append(lines, "# HELP gobackup_last_timestamp Last backup timestamp", "# TYPE gobackup_last_timestamp gauge")
	for _, key := range keys {
		lines = append(lines, fmt.Sprintf("gobackup_last_timestamp{model=%q,status=%q} %g", key[0], key[1], m.last[key]))
	}
	lines = append(lines, "# HELP gobackup_duration_seconds Backup duration", "# TYPE gobackup_duration_seconds histogram")
	for model, count := range m.count {
		lines = append(lines, fmt.Sprintf("gobackup_duration_seconds_sum{model=%q} %g", model, m.sum[model]),
			fmt.Sprintf("gobackup_duration_seconds_count{model=%q} %d", model, count))
	}
	writer.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(writer, strings.Join(lines, "\n"))
}

type job struct {
	model *model
	cron  *cronSchedule
	every time.Duration
	next  time.Time
}

func registerJobs(c *config) []*job {
	jobs := []*job{}
	for _, name := range c.modelNames() {
		m := c.Models[name]
		if !m.Schedule.Enabled {
			continue
		}
		logger.tag("Scheduler")
		entry := &job{model: m}
		switch {
		case m.Schedule.Cron != "":
			parsed, err := parseCron(m.Schedule.Cron)
			if err != nil {
				logger.infof("Failed to register job func: %v", err)
				continue
			}
			entry.cron = parsed
			entry.next = parsed.next(time.Now())
			logger.infof("Register %s with (cron: %s)", name, m.Schedule.Cron)
		case m.Schedule.Every != "":
			every, err := time.ParseDuration(m.Schedule.Every)
			if err != nil {
				logger.infof("Failed to register job func: %v", err)
				continue
			}
			entry.every = every
			entry.next = time.Now().Add(every)
			logger.infof("Register %s with (every: %s)", name, m.Schedule.Every)
		default:
			continue
		}
		jobs = append(jobs, entry)
	}
	return jobs
}

func serveWeb(c *config) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(writer http.ResponseWriter, _ *http.Request) {
		writer.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(writer).Encode(map[string]string{"message": "GoBackup is running.", "version": version})
	})
	mux.HandleFunc("/metrics", func(writer http.ResponseWriter, _ *http.Request) { runMetrics.write(writer) })
	listener, err := net.Listen("tcp", net.JoinHostPort(c.Web.Host, strconv.Itoa(c.Web.Port)))
	if err != nil {
		return err
	}
	logger.tag("API")
	if c.Web.Password == "" {
		logger.info("You are running with insecure API server. Please don't forget setup `web.password` in config file for more safety.")
	}
	logger.infof("Listening on %s", listener.Addr())
	go func() { _ = http.Serve(listener, mux) }()
	return nil
}

func runDaemon(c *config, configPath string) error {
	logFile, err := os.OpenFile(filepath.Join(c.GoBackupDir, "gobackup.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		logger.tag("API")
		return err
	}
	defer logFile.Close()
	logger.setOutput(multiWriter{os.Stdout, logFile})
	if c.Web.Enabled {
		if err := serveWeb(c); err != nil {
			return err
		}
	}
	jobs := registerJobs(c)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	// One worker: due jobs wait their turn, as behind GoBackup's mutex.
	queue := make(chan *model, 64)
	go func() {
		for m := range queue {
			logger.tag("Scheduler")
			logger.info("Performing...")
			if err := perform(c, m); err != nil {
				logger.tag("Scheduler")
				logger.infof("Failed to perform: %s", err)
				continue
			}
			logger.tag("Scheduler")
			logger.info("Done.")
		}
	}()
	for {
		select {
		case received := <-signals:
			if received == syscall.SIGHUP {
				reloaded, err := loadConfig(configPath)
				if err != nil {
					logger.tag("Config")
					logger.info("Reload failed:", err)
					continue
				}
				c, jobs = reloaded, registerJobs(reloaded)
				continue
			}
			logger.tag("Scheduler")
			logger.infof("Received %v, exiting", received)
			return nil
		case now := <-ticker.C:
			for _, entry := range jobs {
				if now.Before(entry.next) {
					continue
				}
				if entry.cron != nil {
					entry.next = entry.cron.next(now)
				} else {
					entry.next = now.Add(entry.every)
				}
				select {
				case queue <- entry.model:
				default: // far behind: drop the slot rather than block the scheduler
				}
			}
		}
	}
}

type multiWriter []interface{ Write([]byte) (int, error) }

func (writers multiWriter) Write(content []byte) (int, error) {
	for _, writer := range writers {
		_, _ = writer.Write(content)
	}
	return len(content), nil
}

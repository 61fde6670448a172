package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/fatih/color"
)

// GoBackup logs through ONE shared log.Logger whose prefix is the tag the
// last tag() call set, from any goroutine. So a line is prefixed with the
// latest tag, not with the tag of the code that logs it: a failed scheduled
// run ends "[Notifier] Failed to perform: …" and "[Notifier] Done.". Tags are
// cyan, warnings yellow, errors red, fatal magenta, through fatih/color,
// which turns colour off when stdout is not a terminal (or NO_COLOR is set).
const timeFormat = "2006/01/02 15:04:05"

// stampWriter puts the local time in front of every line the logger writes.
type stampWriter struct{ out io.Writer }

func (w stampWriter) Write(line []byte) (int, error) {
	return w.out.Write(append([]byte(time.Now().Format(timeFormat)+" "), line...))
}

var (
	shared  = log.New(stampWriter{os.Stdout}, "", 0)
	isDebug = os.Getenv("DEBUG") == "true"
	// GoBackup hands the text to these as the FORMAT: a "%" in a tag or a
	// message comes out mangled, as it does upstream.
	cyan, yellow, red, magenta = color.CyanString, color.YellowString, color.RedString, color.MagentaString
)

// taggedLogger is a handle on the shared logger.
type taggedLogger struct{}

var logger taggedLogger

// openLogFile makes every line also go to the log file, as `gobackup run`
// does; an unwritable file is silently skipped.
func openLogFile(path string) {
	writers := []io.Writer{os.Stdout}
	if file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o666); err == nil {
		writers = append(writers, file)
	}
	shared = log.New(stampWriter{io.MultiWriter(writers...)}, shared.Prefix(), 0)
}

func tag(name string) taggedLogger {
	shared.SetPrefix(cyan(fmt.Sprintf("[%s] ", name)))
	return logger
}

func (taggedLogger) prefix() string { return shared.Prefix() }

func (taggedLogger) info(values ...any) { shared.Println(values...) }

func (l taggedLogger) infof(format string, values ...any) { l.info(fmt.Sprintf(format, values...)) }

func (taggedLogger) warn(values ...any) { shared.Println(yellow(fmt.Sprint(values...))) }

func (l taggedLogger) warnf(format string, values ...any) { l.warn(fmt.Sprintf(format, values...)) }

func (taggedLogger) error(values ...any) { shared.Println(red(fmt.Sprint(values...))) }

func (l taggedLogger) errorf(format string, values ...any) { l.error(fmt.Sprintf(format, values...)) }

func (taggedLogger) debug(values ...any) {
	if isDebug {
		shared.Println("[debug] ", fmt.Sprint(values...))
	}
}

func (taggedLogger) fatal(values ...any) {
	shared.Println(magenta(fmt.Sprint(values...)))
	os.Exit(1)
}

package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"sync"
)

// tagLogger mirrors GoBackup's logger: "2006/01/02 15:04:05 [Tag] message",
// local time, one shared tag that the last Tag() call set.
type tagLogger struct {
	mu     sync.Mutex
	logger *log.Logger
}

var logger = &tagLogger{logger: log.New(os.Stdout, "", log.LstdFlags|log.Lmsgprefix)}

func (l *tagLogger) setOutput(writer io.Writer) { l.logger.SetOutput(writer) }

func (l *tagLogger) tag(format string, arguments ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.logger.SetPrefix("[" + fmt.Sprintf(format, arguments...) + "] ")
}

func (l *tagLogger) info(arguments ...any) { l.logger.Println(arguments...) }

func (l *tagLogger) infof(format string, arguments ...any) { l.logger.Printf(format, arguments...) }

func (l *tagLogger) fatal(err error) {
	l.logger.Println(err)
	os.Exit(1)
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cheggaaa/pb/v3"
	"github.com/dustin/go-humanize"
	"github.com/google/uuid"
	"github.com/hako/durafmt"
)

var (
	whitespace = regexp.MustCompile(`[\s]+`)
	// isGnuTar decides tar's --ignore-failed-read; checked once at start.
	isGnuTar = func() bool {
		out, _ := run("tar", false, "--version")
		return strings.Contains(out, "GNU")
	}()
)

// run executes command, a whole command line split on whitespace (so an
// argument containing a space cannot be passed), plus args. The program is
// resolved on PATH and started by its full path (so coreutils name
// themselves "/usr/bin/cp: …" in errors). On failure the error is exactly
// the program's stderr; stdout is returned (trimmed of newlines) or, with
// toStdout, passed through.
func run(command string, toStdout bool, args ...string) (string, error) {
	fields := whitespace.Split(command, -1)
	arguments := append(fields[1:len(fields):len(fields)], args...)
	program, err := exec.LookPath(fields[0])
	if err != nil {
		return "", fmt.Errorf("%s cannot be found", fields[0])
	}
	cmd := exec.Command(program, arguments...)
	cmd.Env = os.Environ()
	var stderr, stdout bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stdout
	if toStdout {
		cmd.Stdout = os.Stdout
	}
	if err = cmd.Run(); err != nil {
		logger.debug(program, " ", strings.Join(arguments, " "))
		err = errors.New(stderr.String())
	}
	return strings.Trim(stdout.String(), "\n"), err
}

// runScript runs a (multi-line) script with sh from a temp file.
func runScript(script string) error {
	file := filepath.Join(os.TempDir(), uuid.NewString())
	if err := os.WriteFile(file, []byte(script), 0o755); err != nil {
		return err
	}
	defer os.Remove(file)
	_, err := run("sh", true, file)
	return err
}

func absolutePath(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	if strings.HasPrefix(path, "~/") {
		path = filepath.Join(os.Getenv("HOME"), path[2:])
	}
	absolute, err := filepath.Abs(path)
	if err != nil {
		logger.error("Convert config file path to absolute path failed: ", err)
	}
	return absolute
}

func mkdirP(path string) error {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return os.MkdirAll(path, 0o750)
	}
	return nil
}

func pathExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// progressBar is GoBackup's upload bar: cheggaaa/pb on stderr, redrawn
// every 200 ms; without a terminal there is no carriage return, so the
// redraws run on in one long line.
type progressBar struct {
	bar     *pb.ProgressBar
	size    int64
	reader  io.Reader
	lg      taggedLogger
	started time.Time
}

const barTemplate = `{{string . "time"}} {{string . "prefix"}}{{bar . "[" "=" "=" "-" "]"}} {{percent .}} ({{speed .}})`

func newProgressBar(lg taggedLogger, file *os.File) progressBar {
	info, _ := file.Stat()
	bar := pb.ProgressBarTemplate(barTemplate).Start64(info.Size())
	bar.SetWidth(100)
	bar.Set("time", time.Now().Format(timeFormat))
	bar.Set("prefix", lg.prefix())
	progress := progressBar{bar: bar, size: info.Size(), reader: bar.NewProxyReader(file), lg: lg, started: time.Now()}
	lg.infof("-> Uploading (%s)...", humanize.Bytes(uint64(progress.size)))
	return progress
}

func (p progressBar) fail(format string, values ...any) error {
	p.bar.Finish()
	return fmt.Errorf(format, values...)
}

func (p progressBar) done(location string) {
	p.bar.Finish()
	p.lg.info(fmt.Sprintf("Uploaded: %s (Duration %v)", location, durafmt.Parse(time.Since(p.started)).LimitFirstN(2).String()))
}

// lookPathIf resolves program on PATH; an empty name is never found.
func lookPathIf(program string) (string, error) {
	if program == "" {
		return "", exec.ErrNotFound
	}
	return exec.LookPath(program)
}

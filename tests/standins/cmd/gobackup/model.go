package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/spf13/viper"
)

// GoBackup's Prometheus metrics (default registry, so /metrics also carries
// the go_* and process_* collectors).
var (
	totalAttempts = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gobackup", Name: "total_attempts", Help: "Total number of backup attempts",
	}, []string{"model", "status"})
	durationSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "gobackup", Name: "duration_seconds", Help: "Duration of backup in seconds",
		Buckets: prometheus.ExponentialBuckets(1, 2, 15),
	}, []string{"model"})
	fileSizes = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gobackup", Name: "file_size_bytes", Help: "Size of the last backup file in bytes",
	}, []string{"model"})
	lastTimestamp = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gobackup", Name: "last_timestamp", Help: "Timestamp of the last backup attempt (Unix epoch)",
	}, []string{"model", "status"})
)

// perform runs one model: databases, archive, tar, encryption, split, every
// storage; then the temp dir is removed (success or not), the notifiers run
// and the metrics are recorded. A panic is recovered and counts as success.
func perform(m modelConfig) (err error) {
	lg := tag("Model: " + m.name)
	started := time.Now()
	var archivePath string
	m.before()
	defer func() {
		durationSeconds.WithLabelValues(m.name).Observe(time.Since(started).Seconds())
		status := "success"
		if err != nil {
			lg.error(err)
			notifyFailure(m, err.Error())
			status = "failure"
		} else {
			notifySuccess(m)
		}
		totalAttempts.WithLabelValues(m.name, status).Inc()
		lastTimestamp.WithLabelValues(m.name, status).Set(float64(time.Now().Unix()))
		// The temp dir is gone by now, so this never finds the archive.
		if err == nil && archivePath != "" {
			if info, statErr := os.Stat(archivePath); statErr == nil {
				fileSizes.WithLabelValues(m.name).Set(float64(info.Size()))
			}
		}
	}()
	lg.info("WorkDir:", m.dumpPath)
	defer func() {
		if recover() != nil {
			m.after()
		}
		m.after()
	}()

	if err = runDatabases(m); err != nil {
		return
	}
	if m.archive != nil {
		return fmt.Errorf("archive is not supported by the GoBackup stand-in")
	}
	if archivePath, err = compress(m); err != nil {
		return
	}
	if archivePath, err = encrypt(archivePath, m); err != nil {
		return
	}
	if archivePath, err = split(archivePath, m); err != nil {
		return
	}
	return runStorages(m, archivePath)
}

func (m modelConfig) before() {
	if m.beforeScript != "" {
		logger.info("Executing before_script...")
		if err := runScript(m.beforeScript); err != nil {
			logger.error(err)
		}
	}
}

// after removes the temp dir (the whole workdir when it is a temp dir of its
// own), then runs after_script.
func (m modelConfig) after() {
	lg := tag("Model")
	tempDir := m.tempPath
	if viper.GetBool("useTempWorkDir") {
		tempDir = viper.GetString("workdir")
	}
	lg.infof("Cleanup temp: %s/", tempDir)
	if err := os.RemoveAll(tempDir); err != nil {
		lg.errorf("Cleanup temp dir %s error: %v", tempDir, err)
	}
	if m.afterScript != "" {
		lg.info("Executing after_script...")
		if err := runScript(m.afterScript); err != nil {
			lg.error(err)
		}
	}
}

// compress tars <model>/ from the temp dir with the external tar (GNU tar:
// --ignore-failed-read; a parallel compressor when installed, else -a).
func compress(m modelConfig) (string, error) {
	lg := tag("Compressor")
	kind := m.compressWith.kind
	if kind == "" {
		lg.info("=> Compress | skipped (no compression type specified)")
		return m.dumpPath, nil
	}
	var extension, parallel string
	switch kind {
	case "gz", "tgz", "taz", "tar.gz":
		extension, parallel = ".tar.gz", "pigz"
	case "Z", "taZ", "tar.Z":
		extension = ".tar.Z"
	case "bz2", "tbz", "tbz2", "tar.bz2":
		extension, parallel = ".tar.bz2", "pbzip2"
	case "lz", "tar.lz":
		extension = ".tar.lz"
	case "lzma", "tlz", "tar.lzma":
		extension = ".tar.lzma"
	case "lzo", "tar.lzo":
		extension = ".tar.lzo"
	case "xz", "txz", "tar.xz":
		extension, parallel = ".tar.xz", "pixz"
	case "zst", "tzst", "tar.zst":
		extension = ".tar.zst"
	case "tar":
		extension = ".tar"
	default:
		return "", fmt.Errorf("Unsupported compress type: %s", kind)
	}
	m.viper.Set("Ext", extension)
	lg.info("=> Compress | " + kind)
	if err := mkdirP(m.dumpPath); err != nil {
		lg.errorf("Failed to mkdir dump path %s: %v", m.dumpPath, err)
		return "", err
	}
	if err := os.Chdir(filepath.Join(m.dumpPath, "../")); err != nil {
		return "", fmt.Errorf("chdir to dump path: %s: %w", m.dumpPath, err)
	}
	archivePath := filepath.Join(m.tempPath, time.Now().Format(m.compressWith.viper.GetString("filename_format"))+extension)
	options := []string{}
	if isGnuTar {
		options = append(options, "--ignore-failed-read")
	}
	if program, err := lookPathIf(parallel); err == nil {
		options = append(options, "--use-compress-program", program)
	} else {
		options = append(options, "-a")
	}
	options = append(options, "-cf")
	if args := m.compressWith.viper.GetString("args"); args != "" {
		options = append(options, args)
	}
	if _, err := run("tar", false, append(options, archivePath, m.name)...); err != nil {
		return "", err
	}
	lg.info("->", archivePath)
	return archivePath, nil
}

func encrypt(archivePath string, m modelConfig) (string, error) {
	lg := tag("Encryptor")
	if m.encryptWith.kind != "openssl" {
		return archivePath, nil
	}
	settings := m.encryptWith.viper
	settings.SetDefault("salt", true)
	settings.SetDefault("base64", false)
	settings.SetDefault("args", "")
	settings.SetDefault("chiper", "aes-256-cbc")
	lg.info("encrypt | openssl")
	password := settings.GetString("password")
	if password == "" {
		return "", fmt.Errorf("password option is required")
	}
	options := []string{settings.GetString("chiper")}
	if settings.GetBool("base64") {
		options = append(options, "-base64")
	}
	if settings.GetBool("salt") {
		options = append(options, "-salt")
	}
	options = append(options, strings.Fields(settings.GetString("args"))...)
	options = append(options, "-k", password)
	target := archivePath + ".enc"
	options = append(options, "-in", archivePath, "-out", target)
	if _, err := run("openssl", false, options...); err != nil {
		return "", fmt.Errorf("OpenSSL encrypt failed: %s `openssl %s`", strings.TrimSpace(err.Error()), strings.Join(options, " "))
	}
	lg.info("encrypted:", target)
	m.viper.Set("Ext", m.viper.GetString("Ext")+".enc")
	return target, nil
}

// split cuts the archive into <name>/<name><ext>-NNN chunks with split(1).
func split(archivePath string, m modelConfig) (string, error) {
	lg := tag("Splitter")
	if m.splitter == nil {
		return archivePath, nil
	}
	lg.info("Split to chunks")
	m.splitter.SetDefault("suffix_length", 3)
	m.splitter.SetDefault("numeric_suffixes", true)
	if m.splitter.GetString("chunk_size") == "" {
		return "", fmt.Errorf("chunk_size option is required")
	}
	directory := strings.TrimSuffix(archivePath, m.viper.GetString("Ext"))
	if err := mkdirP(directory); err != nil {
		return "", err
	}
	options := []string{"-b", m.splitter.GetString("chunk_size"), "-a", strconv.Itoa(m.splitter.GetInt("suffix_length"))}
	if m.splitter.GetBool("numeric_suffixes") {
		options = append(options, "--numeric-suffixes")
	}
	options = append(options, archivePath, filepath.Join(directory, filepath.Base(archivePath)+"-"))
	if _, err := run("split", false, options...); err != nil {
		return "", err
	}
	lg.info("Split done")
	return directory, os.Remove(archivePath)
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

var compressExtensions = map[string]string{
	"tar": ".tar", "gz": ".tar.gz", "tgz": ".tar.gz", "taz": ".tar.gz", "tar.gz": ".tar.gz",
	"bz2": ".tar.bz2", "tbz": ".tar.bz2", "tbz2": ".tar.bz2", "tar.bz2": ".tar.bz2",
	"xz": ".tar.xz", "txz": ".tar.xz", "tar.xz": ".tar.xz",
	"zst": ".tar.zst", "tzst": ".tar.zst", "tar.zst": ".tar.zst",
}

// performLock serialises runs, as GoBackup's scheduler does.
var performLock sync.Mutex

func performModels(c *config, names []string) error {
	if len(names) == 0 {
		names = c.modelNames()
	}
	var lastErr error
	for _, name := range names {
		entry, found := c.Models[name]
		if !found {
			return fmt.Errorf("model %s not found in %s", name, c.Path)
		}
		if err := perform(c, entry); err != nil {
			logger.tag("Model %s", name)
			logger.info(err)
			lastErr = err
		}
	}
	return lastErr
}

func perform(c *config, m *model) (err error) {
	performLock.Lock()
	defer performLock.Unlock()
	started := time.Now()
	defer func() { recordAttempt(m.Name, err == nil, time.Since(started)) }()

	tempPath := filepath.Join(c.Workdir, strconv.FormatInt(time.Now().UnixNano(), 10))
	dumpPath := filepath.Join(tempPath, m.Name)
	logger.tag("Model: %s", m.Name)
	logger.info("WorkDir:", dumpPath)
	defer func() {
		logger.tag("Model: %s", m.Name)
		logger.infof("Cleanup temp: %s/", tempPath)
		_ = os.RemoveAll(tempPath)
	}()
	if err := os.MkdirAll(dumpPath, 0o700); err != nil {
		return err
	}
	for _, key := range sortedKeys(m.Databases) {
		database := m.Databases[key]
		kind := text(database, "type", "")
		logger.tag("Database")
		logger.infof("=> database | %v: %v", kind, key)
		if kind != "mssql" {
			return fmt.Errorf("database type %q is not supported by this stand-in", kind)
		}
		if err := dumpMSSQL(dumpPath, key, database); err != nil {
			logger.info("Dump failed")
			return err
		}
		logger.info("Dump succeeded")
	}
	archive, err := compress(tempPath, m)
	if err != nil {
		return err
	}
	var storageErr error
	for _, key := range sortedKeys(m.Storages) {
		storage := m.Storages[key]
		logger.tag("Storage")
		logger.infof("=> Storage | %s", text(storage, "type", ""))
		if err := store(c, m, key, storage, archive); err != nil {
			logger.tag("Storage")
			logger.info(err)
			storageErr = err
		}
	}
	return storageErr
}

func sortedKeys[V any](values map[string]V) []string {
	keys := make([]string, 0, len(values))
	for key := range values {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

func dumpMSSQL(dumpPath, key string, database map[string]any) error {
	name := text(database, "database", "")
	target := filepath.Join(dumpPath, "mssql", key)
	if err := os.MkdirAll(target, 0o700); err != nil {
		return err
	}
	logger.tag("MSSQL")
	logger.info("dump path:", target)
	parts := []string{"sqlpackage", "/Action:Export", "/SourceDatabaseName:" + name}
	if user := text(database, "username", "sa"); user != "" {
		parts = append(parts, "/SourceUser:"+user)
	}
	if password := text(database, "password", ""); password != "" {
		parts = append(parts, "/SourcePassword:"+password)
	}
	parts = append(parts, fmt.Sprintf("/SourceServerName:%s,%d", text(database, "host", "127.0.0.1"), number(database, "port", 1433)))
	if flag(database, "trust_server_certificate", false) {
		parts = append(parts, "/SourceTrustServerCertificate:True")
	}
	if args := text(database, "args", ""); args != "" {
		parts = append(parts, args)
	}
	parts = append(parts, "/TargetFile:"+filepath.Join(target, name+".bacpac"))
	// GoBackup joins the parts into one string and splits it on whitespace.
	fields := strings.Fields(strings.Join(parts, " "))
	if _, err := exec.LookPath(fields[0]); err != nil {
		return errors.New("sqlpackage cannot be found")
	}
	command := exec.Command(fields[0], fields[1:]...)
	var stderr bytes.Buffer
	command.Stdout = os.Stdout
	command.Stderr = &stderr
	if err := command.Run(); err != nil {
		logger.info("-> Dump error:", strings.TrimSpace(stderr.String()))
		return errors.New(stderr.String())
	}
	return nil
}

func compress(tempPath string, m *model) (string, error) {
	extension, found := compressExtensions[m.CompressType]
	if !found {
		return "", fmt.Errorf("unsupported compress type: %s", m.CompressType)
	}
	archive := filepath.Join(tempPath, time.Now().Format(m.FilenameFormat)+extension)
	logger.tag("Compressor")
	logger.infof("=> Compress | %s", m.CompressType)
	arguments := []string{"-cf", archive, m.Name}
	if extension != ".tar" {
		arguments = append([]string{"-a"}, arguments...)
	}
	command := exec.Command("tar", arguments...)
	command.Dir = tempPath
	if output, err := command.CombinedOutput(); err != nil {
		return "", fmt.Errorf("compress failed: %v: %s", err, output)
	}
	logger.info("->", archive)
	return archive, nil
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/joho/godotenv"
	"github.com/spf13/viper"
)

// Configuration is read as GoBackup v3.1.1 reads it: through viper (keys
// lower-cased, snake_case), with the .env beside the file loaded first
// (godotenv, existing variables win) and the whole file passed through
// os.ExpandEnv before it is parsed. viper also watches the file: a change
// reloads it and restarts the scheduler.

var (
	goBackupDir = func() string {
		if dir := os.Getenv("GOBACKUP_DIR"); dir != "" {
			return dir
		}
		return filepath.Join(os.Getenv("HOME"), ".gobackup")
	}()
	pidFilePath = filepath.Join(goBackupDir, "gobackup.pid")
	logFilePath = filepath.Join(goBackupDir, "gobackup.log")

	models    []modelConfig
	webConfig struct {
		Host, Port, Username, Password string
		Enabled                        bool
	}
	configLock      sync.Mutex
	onConfigChanges []func()
)

type scheduleConfig struct {
	Enabled bool   `json:"enabled,omitempty"`
	Cron    string `json:"cron,omitempty"`
	Every   string `json:"every,omitempty"`
	At      string `json:"at,omitempty"`
}

// String is how the scheduler's "Register" line and /api/config word it.
func (s scheduleConfig) String() string {
	switch {
	case !s.Enabled:
		return "disabled"
	case s.Cron != "":
		return "cron " + s.Cron
	case s.At != "":
		return fmt.Sprintf("every %s at %s", s.Every, s.At)
	}
	return "every " + s.Every
}

// subConfig is one entry under databases/storages/notifiers, or compress_with.
type subConfig struct {
	name, kind string
	viper      *viper.Viper
}

type modelConfig struct {
	name, description string
	// workDir is the working directory at load time (relative local paths).
	workDir string
	// tempPath is <workdir>/<unix nanos> of the moment the config was
	// loaded: every run until the next reload uses the same one.
	tempPath, dumpPath        string
	schedule                  scheduleConfig
	compressWith, encryptWith subConfig
	archive, splitter         *viper.Viper
	databases, storages       map[string]subConfig
	notifiers                 map[string]subConfig
	defaultStorage            string
	viper                     *viper.Viper
	beforeScript, afterScript string
}

func initConfig(file string) error {
	lg := tag("Config")
	viper.SetConfigType("yaml")
	if file != "" {
		file = absolutePath(file)
		lg.info("Load config:", file)
		viper.SetConfigFile(file)
	} else {
		lg.info("Load config from default path.")
		viper.SetConfigName("gobackup")
		viper.AddConfigPath(".")
		viper.AddConfigPath("$HOME/.gobackup")
		viper.AddConfigPath("/etc/gobackup/")
	}
	viper.WatchConfig()
	viper.OnConfigChange(func(event fsnotify.Event) {
		lg.info("Config file changed:", event.Name)
		defer func() {
			for _, callback := range onConfigChanges {
				callback()
			}
		}()
		if err := loadConfig(); err != nil {
			lg.error(err.Error())
		}
	})
	return loadConfig()
}

func loadConfig() error {
	configLock.Lock()
	defer configLock.Unlock()
	lg := tag("Config")
	if err := viper.ReadInConfig(); err != nil {
		lg.error("Load gobackup config failed: ", err)
		return err
	}
	used := viper.ConfigFileUsed()
	if info, err := os.Stat(used); err == nil && info.Mode()&0o004 != 0 {
		lg.warnf("Other users are able to access %s with mode %v", used, info.Mode())
	}
	lg.info("Config file:", used)

	dotEnv := filepath.Join(filepath.Dir(used), ".env")
	if _, err := os.Stat(dotEnv); err == nil {
		if err := godotenv.Load(dotEnv); err != nil {
			lg.errorf("Load %s failed: %v", dotEnv, err)
			return err
		}
	}
	content, _ := os.ReadFile(used)
	if err := viper.ReadConfig(strings.NewReader(os.ExpandEnv(string(content)))); err != nil {
		lg.errorf("Load expanded config failed: %v", err)
		return err
	}

	// Without a workdir every load gets a fresh temp dir, removed whole after a run.
	viper.Set("useTempWorkDir", false)
	if viper.GetString("workdir") == "" {
		dir, err := os.MkdirTemp("", "gobackup")
		if err != nil {
			return err
		}
		viper.Set("workdir", dir)
		viper.Set("useTempWorkDir", true)
	}

	models = []modelConfig{}
	for key := range viper.GetStringMap("models") { // map order: random
		entry, err := loadModel(key)
		if err != nil {
			return fmt.Errorf("load model %s: %v", key, err)
		}
		models = append(models, entry)
	}
	if len(models) == 0 {
		return fmt.Errorf("no model found in %s", used)
	}

	viper.SetDefault("web.host", "0.0.0.0")
	viper.SetDefault("web.port", 2703)
	viper.SetDefault("web.enabled", true)
	webConfig.Host = viper.GetString("web.host")
	webConfig.Port = viper.GetString("web.port")
	webConfig.Username = viper.GetString("web.username")
	webConfig.Password = viper.GetString("web.password")
	webConfig.Enabled = viper.GetBool("web.enabled")
	lg.infof("Config loaded, found %d models.", len(models))
	return nil
}

func loadModel(key string) (modelConfig, error) {
	workDir, _ := os.Getwd()
	entry := modelConfig{name: key, workDir: workDir}
	entry.tempPath = filepath.Join(viper.GetString("workdir"), fmt.Sprintf("%d", time.Now().UnixNano()))
	entry.dumpPath = filepath.Join(entry.tempPath, key)
	entry.viper = viper.Sub("models." + key)
	if entry.viper == nil {
		return modelConfig{}, fmt.Errorf("model %s is empty or not a map", key)
	}
	entry.description = entry.viper.GetString("description")

	compress := entry.viper.Sub("compress_with")
	if compress == nil {
		compress = viper.New()
	}
	compress.SetDefault("type", "tar")
	compress.SetDefault("filename_format", "2006.01.02.15.04.05")
	entry.compressWith = subConfig{kind: compress.GetString("type"), viper: compress}
	entry.encryptWith = subConfig{kind: entry.viper.GetString("encrypt_with.type"), viper: entry.viper.Sub("encrypt_with")}
	entry.archive = entry.viper.Sub("archive")
	entry.splitter = entry.viper.Sub("split_with")
	entry.beforeScript = entry.viper.GetString("before_script")
	entry.afterScript = entry.viper.GetString("after_script")

	// Any schedule block schedules the model: its `enabled` is never read.
	if schedule := entry.viper.Sub("schedule"); schedule != nil {
		entry.schedule = scheduleConfig{Enabled: true, Cron: schedule.GetString("cron"), Every: schedule.GetString("every"), At: schedule.GetString("at")}
	}
	entry.databases = subConfigs(entry.viper, "databases")
	entry.storages = subConfigs(entry.viper, "storages")
	entry.defaultStorage = entry.viper.GetString("default_storage")
	if entry.defaultStorage == "" {
		for name := range entry.storages {
			entry.defaultStorage = name
			break
		}
	}
	if len(entry.databases) == 0 && entry.archive == nil {
		return modelConfig{}, fmt.Errorf("model %s must configure databases or archive", key)
	}
	if len(entry.storages) == 0 {
		return modelConfig{}, fmt.Errorf("no storage found in model %s", key)
	}
	entry.notifiers = subConfigs(entry.viper, "notifiers")
	return entry, nil
}

func subConfigs(parent *viper.Viper, key string) map[string]subConfig {
	result := map[string]subConfig{}
	section := parent.Sub(key)
	if section == nil {
		return result
	}
	for name := range parent.GetStringMap(key) {
		child := section.Sub(name)
		if child == nil {
			child = viper.New()
		}
		result[name] = subConfig{name: name, kind: child.GetString("type"), viper: child}
	}
	return result
}

func modelByName(name string) *modelConfig {
	for _, entry := range models {
		if entry.name == name {
			found := entry
			return &found
		}
	}
	return nil
}

package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

type webConfig struct {
	Host     string
	Port     int
	Username string
	Password string
	Enabled  bool
}

type schedule struct {
	Enabled bool
	Cron    string
	Every   string
}

type model struct {
	Name           string
	Schedule       schedule
	CompressType   string
	FilenameFormat string
	Databases      map[string]map[string]any
	Storages       map[string]map[string]any
}

type config struct {
	Path        string
	Workdir     string
	GoBackupDir string
	Web         webConfig
	Models      map[string]*model
}

func (c *config) modelNames() []string {
	names := make([]string, 0, len(c.Models))
	for name := range c.Models {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func findConfig(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	candidates := []string{"gobackup.yml", filepath.Join(os.Getenv("HOME"), ".gobackup", "gobackup.yml"), "/etc/gobackup/gobackup.yml"}
	for _, candidate := range candidates {
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("config file not found in %s", strings.Join(candidates, ", "))
}

// loadDotenv sets the variables of a .env file that are not set already.
func loadDotenv(path string) error {
	file, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, found := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !found {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '\'' || value[0] == '"') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		if _, set := os.LookupEnv(key); !set {
			os.Setenv(key, value)
		}
	}
	return scanner.Err()
}

func text(values map[string]any, key, fallback string) string {
	if value, found := values[key]; found && value != nil {
		return fmt.Sprint(value)
	}
	return fallback
}

func number(values map[string]any, key string, fallback int) int {
	if parsed, err := strconv.Atoi(text(values, key, "")); err == nil {
		return parsed
	}
	return fallback
}

func flag(values map[string]any, key string, fallback bool) bool {
	if parsed, err := strconv.ParseBool(text(values, key, "")); err == nil {
		return parsed
	}
	return fallback
}

func mapping(value any) map[string]any {
	if result, ok := value.(map[string]any); ok {
		return result
	}
	return map[string]any{}
}

func loadConfig(path string) (*config, error) {
	path, err := findConfig(path)
	if err != nil {
		return nil, err
	}
	if err := loadDotenv(filepath.Join(filepath.Dir(path), ".env")); err != nil {
		return nil, err
	}
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var document map[string]any
	if err := yaml.Unmarshal([]byte(os.ExpandEnv(string(content))), &document); err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	result := &config{Path: path, Models: map[string]*model{}}
	result.GoBackupDir = os.Getenv("GOBACKUP_DIR")
	if result.GoBackupDir == "" {
		result.GoBackupDir = filepath.Join(os.Getenv("HOME"), ".gobackup")
	}
	result.Workdir = text(document, "workdir", filepath.Join(os.TempDir(), "gobackup"))
	web := mapping(document["web"])
	result.Web = webConfig{
		Host: text(web, "host", "0.0.0.0"), Port: number(web, "port", 2703),
		Username: text(web, "username", ""), Password: text(web, "password", ""), Enabled: flag(web, "enabled", true),
	}
	for name, raw := range mapping(document["models"]) {
		body := mapping(raw)
		scheduleBody, hasSchedule := body["schedule"]
		compress := mapping(body["compress_with"])
		entry := &model{
			Name:           name,
			CompressType:   text(compress, "type", "tar"),
			FilenameFormat: text(compress, "filename_format", "2006.01.02.15.04.05"),
			Databases:      map[string]map[string]any{},
			Storages:       map[string]map[string]any{},
		}
		if hasSchedule {
			values := mapping(scheduleBody)
			// Any schedule block enables scheduling unless it says otherwise.
			entry.Schedule = schedule{Enabled: flag(values, "enabled", true), Cron: text(values, "cron", ""), Every: text(values, "every", "")}
		}
		for key, database := range mapping(body["databases"]) {
			entry.Databases[key] = mapping(database)
		}
		for key, storage := range mapping(body["storages"]) {
			entry.Storages[key] = mapping(storage)
		}
		result.Models[name] = entry
	}
	return result, nil
}

package main

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

// captureLog sends the shared logger to a buffer for the test.
func captureLog(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buffer bytes.Buffer
	previous := shared
	shared = log.New(stampWriter{&buffer}, "", 0)
	t.Cleanup(func() { shared = previous })
	return &buffer
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// loadTestConfig loads content as the config file, with a .env beside it.
func loadTestConfig(t *testing.T, content, dotEnv string) string {
	t.Helper()
	viper.Reset()
	directory := t.TempDir()
	file := filepath.Join(directory, "gobackup.yml")
	writeFile(t, file, content, 0o600)
	if dotEnv != "" {
		writeFile(t, filepath.Join(directory, ".env"), dotEnv, 0o600)
	}
	viper.SetConfigType("yaml")
	viper.SetConfigFile(file)
	if err := loadConfig(); err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	return directory
}

func TestScheduleIsWordedAsUpstream(t *testing.T) {
	cases := map[string]scheduleConfig{
		"cron 0 2 * * *":     {Enabled: true, Cron: "0 2 * * *"},
		"every 5s":           {Enabled: true, Every: "5s"},
		"every 24h at 02:00": {Enabled: true, Every: "24h", At: "02:00"},
		"disabled":           {Cron: "0 2 * * *"},
	}
	for want, schedule := range cases {
		if got := schedule.String(); got != want {
			t.Errorf("%+v: got %q, want %q", schedule, got, want)
		}
	}
}

func TestSchedulerRegistersAsGocronDoes(t *testing.T) {
	output := captureLog(t)
	models = []modelConfig{
		{name: "sales", schedule: scheduleConfig{Enabled: true, Cron: "0 2 * * *"}},
		{name: "daily", schedule: scheduleConfig{Enabled: true, Every: "1day"}},
		{name: "at", schedule: scheduleConfig{Enabled: true, Every: "24h", At: "02:00"}},
		{name: "bad", schedule: scheduleConfig{Enabled: true, Cron: "0 2 * *"}},
		{name: "unscheduled"},
	}
	startScheduler()
	stopScheduler()
	text := output.String()
	for _, want := range []string{
		"[Scheduler] Register sales with (cron 0 2 * * *)\n",
		"[Scheduler] Register daily with (every 1day)\n",
		`[Scheduler] Failed to register job func: time: unknown unit "day" in duration "1day"` + "\n",
		"[Scheduler] Failed to register job func: the At() method is not supported for this time unit\n",
		"[Scheduler] Failed to register job func: cron expression failed to be parsed: expected exactly 5 fields, found 4: [0 2 * *]\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "unscheduled") {
		t.Errorf("a model without schedule was registered:\n%s", text)
	}
	if got := len(cronScheduler.Jobs()); got != 1 {
		t.Errorf("%d jobs registered, want 1", got)
	}
}

func TestConfigKeysAreLowerCasedAndExpanded(t *testing.T) {
	captureLog(t)
	t.Setenv("GOBACKUP_TEST_USER", "")
	loadTestConfig(t, `workdir: /tmp/gobackup-test
models:
  Sales:
    schedule:
      enabled: false
      cron: "0 2 * * *"
    databases:
      SalesDemo:
        type: mssql
        database: SalesDemo
        username: ${GOBACKUP_TEST_USER}
        password: ${GOBACKUP_TEST_PASSWORD:-fallback}
        trustServerCertificate: true
    storages:
      local:
        type: local
        path: /tmp/gobackup-test-local
`, "GOBACKUP_TEST_USER=from-dotenv\nGOBACKUP_TEST_PASSWORD=secret\n")
	if len(models) != 1 || models[0].name != "sales" {
		t.Fatalf("models: %+v", models)
	}
	if modelByName("Sales") != nil {
		t.Error("model Sales found; viper lower-cases it to sales")
	}
	m := models[0]
	if !m.schedule.Enabled || m.schedule.Cron != "0 2 * * *" {
		t.Errorf("schedule %+v: any schedule block is enabled", m.schedule)
	}
	database, found := m.databases["salesdemo"]
	if !found {
		t.Fatalf("databases: %+v", m.databases)
	}
	if got := database.viper.GetString("database"); got != "SalesDemo" {
		t.Errorf("database = %q, the value keeps its case", got)
	}
	// The environment wins over .env; ${VAR:-default} is not shell syntax.
	if got := database.viper.GetString("username"); got != "" {
		t.Errorf("username = %q, want the empty value already in the environment", got)
	}
	if got := database.viper.GetString("password"); got != "" {
		t.Errorf("password = %q, want empty (os.ExpandEnv has no :- default)", got)
	}
	if database.viper.GetBool("trust_server_certificate") {
		t.Error("trustServerCertificate (camelCase) must be ignored")
	}
	if !strings.HasPrefix(m.tempPath, "/tmp/gobackup-test/") || m.dumpPath != m.tempPath+"/sales" {
		t.Errorf("tempPath %q dumpPath %q", m.tempPath, m.dumpPath)
	}
	if err := performModels([]string{"Sales"}); err == nil || !strings.HasPrefix(err.Error(), "model Sales not found in ") {
		t.Errorf("perform -m Sales: %v", err)
	}
}

func archiveMembers(t *testing.T, path string) []string {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	reader := tar.NewReader(file)
	members := []string{}
	for {
		header, err := reader.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if header.Typeflag == tar.TypeReg {
			members = append(members, header.Name)
		}
	}
	return members
}

func TestPerformDumpsTarsStoresAndCleansUp(t *testing.T) {
	output := captureLog(t)
	bin := t.TempDir()
	writeFile(t, filepath.Join(bin, "sqlpackage"), `#!/bin/sh
for argument in "$@"; do echo "$argument" >> "$(dirname "$0")/arguments"; done
for argument in "$@"; do case "$argument" in /TargetFile:*) echo bacpac > "${argument#/TargetFile:}";; esac; done
echo "Connecting to database 'SalesDemo' on server 'mssql,1433'."
`, 0o755)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	work := t.TempDir()
	cyclerPath = filepath.Join(t.TempDir(), "cycler")
	local := filepath.Join(t.TempDir(), "local")
	directory, _ := os.Getwd()
	t.Cleanup(func() { _ = os.Chdir(directory) })
	loadTestConfig(t, `workdir: `+work+`
models:
  sales:
    compress_with:
      type: tar
      # Two runs in one second share a name, and keep would delete it.
      filename_format: 2006.01.02.15.04.05.000000000
    databases:
      SalesDemo:
        type: mssql
        host: mssql
        database: SalesDemo
        password: pass word
        trust_server_certificate: true
        args: /p:CommandTimeout=600
    storages:
      local:
        type: local
        path: `+local+`
        keep: 1
`, "")
	for run := 0; run < 2; run++ {
		if err := perform(models[0]); err != nil {
			t.Fatalf("perform: %v\n%s", err, output)
		}
	}
	arguments, _ := os.ReadFile(filepath.Join(bin, "arguments"))
	bacpac := models[0].tempPath + "/sales/mssql/salesdemo/SalesDemo.bacpac"
	want := "/Action:Export\n/SourceDatabaseName:SalesDemo\n/SourceUser:sa\n/SourcePassword:pass\nword\n" +
		"/SourceServerName:mssql,1433\n/SourceTrustServerCertificate:True\n/p:CommandTimeout=600\n/TargetFile:" + bacpac + "\n"
	if !strings.HasPrefix(string(arguments), want) {
		t.Errorf("sqlpackage arguments:\n%s\nwant:\n%s", arguments, want)
	}
	archives := regularFiles(t, local)
	if len(archives) != 1 {
		t.Fatalf("local storage holds %v, keep is 1", archives)
	}
	// The failed state "upload" leaves an empty .gobackup-state/ behind.
	if info, err := os.Stat(filepath.Join(local, ".gobackup-state")); err != nil || !info.IsDir() {
		t.Errorf(".gobackup-state/ in the local path: %v", err)
	}
	if members := archiveMembers(t, filepath.Join(local, archives[0])); len(members) != 1 || members[0] != "sales/mssql/salesdemo/SalesDemo.bacpac" {
		t.Errorf("archive members %v", members)
	}
	if leftovers, _ := os.ReadDir(work); len(leftovers) != 0 {
		t.Errorf("workdir not cleaned: %v", leftovers)
	}
	if _, err := os.Stat(filepath.Join(cyclerPath, "sales_local.json")); err != nil {
		t.Errorf("local cycler state: %v", err)
	}
	text := output.String()
	for _, want := range []string{
		"[Model: sales] WorkDir: " + models[0].dumpPath + "\n",
		"[Database] => database | mssql: salesdemo\n",
		"[MSSQL] Connecting to database 'SalesDemo' on server 'mssql,1433'.\n",
		"[Compressor] => Compress | tar\n",
		"[Storage] => Storage | local\n",
		"[Cycler] Remote cycler state not found or unavailable: Local is not support download, falling back to local\n",
		"[Local] Failed to save cycler state to remote storage: ",
		"cp: cannot stat '" + cyclerPath + "/cycler-state-",
		"[Model] Cleanup temp: " + models[0].tempPath + "/\n",
		"[Notifier] Running 0 Notifiers\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
}

func TestEveryStorageRunsWhenOneFails(t *testing.T) {
	captureLog(t)
	cyclerPath = filepath.Join(t.TempDir(), "cycler")
	archive := filepath.Join(t.TempDir(), "2026.11.23.02.00.00.tar")
	writeFile(t, archive, "archive", 0o600)
	good, bad := t.TempDir(), filepath.Join(t.TempDir(), "file")
	writeFile(t, bad, "not a directory", 0o600)
	storages := map[string]subConfig{}
	for name, path := range map[string]string{"good": good, "bad": bad} {
		settings := viper.New()
		settings.Set("path", path)
		storages[name] = subConfig{name: name, kind: "local", viper: settings}
	}
	err := runStorages(modelConfig{name: "sales", storages: storages}, archive)
	if err == nil || !strings.HasPrefix(err.Error(), "Storage errors: [") {
		t.Errorf("error %v", err)
	}
	if names := regularFiles(t, good); strings.Join(names, ",") != "2026.11.23.02.00.00.tar" {
		t.Errorf("good storage holds %v", names)
	}
}

func regularFiles(t *testing.T, directory string) []string {
	t.Helper()
	entries, err := os.ReadDir(directory)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, entry := range entries {
		if entry.Type().IsRegular() {
			names = append(names, entry.Name())
		}
	}
	sort.Strings(names)
	return names
}

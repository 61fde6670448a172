package main

import (
	"fmt"
	"path"
	"strings"
)

// upstreamDatabases are the types GoBackup implements; only mssql is
// implemented by the stand-in.
var upstreamDatabases = map[string]bool{
	"mysql": true, "mariadb": true, "redis": true, "postgresql": true, "mongodb": true,
	"sqlite": true, "mssql": true, "influxdb2": true, "etcd": true, "firebird": true,
}

// runDatabases dumps every database of the model, in map (random) order,
// stopping at the first failure.
func runDatabases(m modelConfig) error {
	for _, database := range m.databases {
		if err := runDatabase(m, database); err != nil {
			return err
		}
	}
	return nil
}

func runDatabase(m modelConfig, database subConfig) (err error) {
	lg := tag("Database")
	dumpPath := path.Join(m.dumpPath, database.kind, database.name)
	if err := mkdirP(dumpPath); err != nil {
		logger.errorf("Failed to mkdir dump path %s: %v", dumpPath, err)
	}
	if !upstreamDatabases[database.kind] {
		lg.warn(fmt.Errorf("model: %s databases.%s config `type: %s`, but is not implement", m.name, database.name, database.kind))
		return nil
	}
	lg.infof("=> database | %v: %v", database.kind, database.name)
	if err := runHook("dump before_script", database.viper.GetString("before_script")); err != nil {
		return err
	}
	afterScript := database.viper.GetString("after_script")
	onExit := database.viper.GetString("on_exit")
	if database.kind != "mssql" {
		return fmt.Errorf("database type %s is not supported by the GoBackup stand-in", database.kind)
	}
	if err = dumpMSSQL(database, dumpPath); err != nil {
		lg.info("Dump failed")
		switch {
		case afterScript == "" || onExit == "":
			return err
		case onExit == "always":
			lg.info("on_exit is always, start to run after_script")
		case onExit == "failure":
			lg.info("on_exit is failure, start to run after_script")
		case onExit == "success":
			lg.info("on_exit is success, skip run after_script")
			return err
		default:
			return err
		}
	} else {
		lg.info("Dump succeeded")
	}
	if hookErr := runHook("dump after_script", afterScript); hookErr != nil {
		return hookErr
	}
	return err
}

func runHook(action, script string) error {
	lg := tag("Database")
	if script == "" {
		return nil
	}
	lg.infof("Run %s", action)
	if err := runScript(script); err != nil {
		return fmt.Errorf("Run %s failed: %v", action, err)
	}
	lg.infof("Run %s succeeded", action)
	return nil
}

// dumpMSSQL exports with sqlpackage. The command is ONE string split on
// whitespace; sqlpackage's stdout is logged after it ends, its stderr is the
// error.
func dumpMSSQL(database subConfig, dumpPath string) error {
	lg := tag("MSSQL")
	settings := database.viper
	settings.SetDefault("host", "127.0.0.1")
	settings.SetDefault("port", 1433)
	settings.SetDefault("username", "sa")
	settings.SetDefault("trust_server_certificate", false)
	settings.SetDefault("all_databases", false)
	host, port := settings.GetString("host"), settings.GetString("port")
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "1433"
	}
	name := settings.GetString("database")
	username, password := settings.GetString("username"), settings.GetString("password")
	trust := settings.GetBool("trust_server_certificate")

	command := func(name string) string {
		credentials := []string{}
		if username != "" {
			credentials = append(credentials, "/SourceUser:"+username)
		}
		if password != "" {
			credentials = append(credentials, "/SourcePassword:"+password)
		}
		extra := []string{}
		if trust {
			extra = append(extra, "/SourceTrustServerCertificate:True")
		}
		if args := settings.GetString("args"); args != "" {
			extra = append(extra, args)
		}
		return strings.Join([]string{
			"sqlpackage", "/Action:Export", "/SourceDatabaseName:" + name, strings.Join(credentials, " "),
			"/SourceServerName:" + host + "," + port, strings.Join(extra, " "),
			"/TargetFile:" + dumpPath + "/" + name + ".bacpac",
		}, " ")
	}

	if !settings.GetBool("all_databases") {
		if name == "" {
			return fmt.Errorf("database config is required when `all_databases` is false")
		}
		out, err := run(command(name), false)
		if err != nil {
			return fmt.Errorf("-> Dump error: %s", err)
		}
		lg.info(out)
		lg.info("dump path:", dumpPath)
		return nil
	}

	query := []string{"-S", host + "," + port, "-Q", "SET NOCOUNT ON; SELECT name FROM sys.databases WHERE name NOT IN ('master', 'tempdb', 'model', 'msdb')", "-h-1", "-W"}
	if username != "" {
		query = append(query, "-U", username)
	}
	if password != "" {
		query = append(query, "-P", password)
	}
	if trust {
		query = append(query, "-C")
	}
	out, err := run("sqlcmd", false, query...)
	if err != nil {
		return fmt.Errorf("-> Failed to get databases: %s", fmt.Errorf("failed to get databases: %s", err))
	}
	found := []string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			found = append(found, line)
		}
	}
	if len(found) == 0 {
		lg.warn("No non-system databases found")
		return nil
	}
	skip := settings.GetStringSlice("skip_databases")
	selected := []string{}
	for _, line := range found {
		if containsFold(skip, line) {
			lg.infof("Skipping database: %s", line)
			continue
		}
		selected = append(selected, line)
	}
	if len(selected) == 0 {
		lg.warn("No databases to backup after filtering")
		return nil
	}
	lg.infof("Found %d database(s) to backup", len(selected))
	lg.infof("Databases: %v", selected)
	for _, each := range selected {
		lg.infof("Backing up database: %s", each)
		out, err := run(command(each), false)
		if err != nil {
			return fmt.Errorf("-> Dump error for database %s: %s", each, err)
		}
		lg.info(out)
		lg.info("dump path:", dumpPath)
	}
	return nil
}

func containsFold(values []string, wanted string) bool {
	for _, value := range values {
		if strings.EqualFold(value, wanted) {
			return true
		}
	}
	return false
}

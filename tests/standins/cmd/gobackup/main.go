// Command gobackup stands in for GoBackup v3.1.1 (github.com/gobackup/gobackup)
// where its release binary cannot be downloaded. It is written from GoBackup's
// documented and observed behaviour, not from its code, and honours what the
// project relies on:
//
//   - `-v`/`--version` prints "gobackup version <v>"; `perform [-c] [-m ...]`
//     runs models once and exits 1 when one failed or is unknown; `run [-c]`
//     runs the scheduler (5-field cron or a Go-duration `every`, local time,
//     one job at a time, failures only logged) and the web server (/status,
//     /metrics) unless web.enabled is false;
//   - `.env` beside the config is loaded, then the file goes through
//     os.ExpandEnv; the config search order is ./, ~/.gobackup/, /etc/gobackup/;
//   - mssql runs sqlpackage with GoBackup's exact argument string, split on
//     whitespace; the dump tree <model>/mssql/<key>/<db>.bacpac is tarred from
//     the temp dir by the external tar; minio/s3 storages upload path-style to
//     <path>/<archive>; `keep` uses the cycler state kept locally in
//     $GOBACKUP_DIR/cycler and remotely in <path>/.gobackup-state/; local
//     storages copy the archive; the temp dir is always removed.
package main

import (
	"fmt"
	"os"
	"strings"
)

// version is set at build time, as goreleaser does (without the "v").
var version = "master"

func usage() {
	fmt.Println("NAME:\n   gobackup - Easy full stack backup operations on UNIX-like systems\n\nCOMMANDS:\n   perform  Perform backup pipeline using config file. If no model specified, all models will be performed\n   run      Run GoBackup scheduler and web server in foreground")
}

// parseFlags reads -c/--config and (for perform) -m/--model, plus bare model names.
func parseFlags(arguments []string, allowModels bool) (string, []string, error) {
	config := ""
	models := []string{}
	for i := 0; i < len(arguments); i++ {
		argument := arguments[i]
		name, value, hasValue := strings.Cut(argument, "=")
		switch name {
		case "-c", "--config", "-m", "--model":
			if !hasValue {
				if i+1 >= len(arguments) {
					return "", nil, fmt.Errorf("flag needs an argument: %s", name)
				}
				value = arguments[i+1]
				i++
			}
			if name == "-c" || name == "--config" {
				config = value
			} else if allowModels {
				models = append(models, value)
			} else {
				return "", nil, fmt.Errorf("flag provided but not defined: %s", name)
			}
		default:
			if strings.HasPrefix(argument, "-") || !allowModels {
				return "", nil, fmt.Errorf("flag provided but not defined: %s", argument)
			}
			models = append(models, argument)
		}
	}
	return config, models, nil
}

func main() {
	arguments := os.Args[1:]
	if len(arguments) == 0 {
		usage()
		return
	}
	switch arguments[0] {
	case "-v", "--version":
		fmt.Printf("gobackup version %s\n", version)
	case "-h", "--help", "help":
		usage()
	case "perform", "run":
		configPath, models, err := parseFlags(arguments[1:], arguments[0] == "perform")
		if err != nil {
			fmt.Fprintf(os.Stderr, "Incorrect Usage: %v\n", err)
			os.Exit(1)
		}
		config, err := loadConfig(configPath)
		if err != nil {
			logger.fatal(err)
		}
		if arguments[0] == "perform" {
			if err := performModels(config, models); err != nil {
				logger.fatal(err)
			}
			return
		}
		if err := runDaemon(config, configPath); err != nil {
			logger.fatal(err)
		}
	default:
		fmt.Fprintf(os.Stderr, "No help topic for '%s'\n", arguments[0])
		os.Exit(3)
	}
}

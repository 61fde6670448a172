// Command gobackup stands in for GoBackup v3.1.1 (github.com/gobackup/gobackup)
// in the tests. It is written against upstream's observed behaviour and built
// on the same libraries (urfave/cli, viper, godotenv, gocron with
// robfig/cron, gin, prometheus client, aws-sdk-go's s3manager, cheggaaa/pb,
// fatih/color, durafmt), so their quirks are the same. What it honours:
//   - `perform [-c FILE] [-m MODEL]... [MODEL]...`: all models when none is
//     named; exit 1 when a model failed or a name is unknown ("model X not
//     found in FILE"); `run` (scheduler + web server unless web.enabled is
//     false); `start` (daemon with pid file); `-v`.
//   - config search ./, ~/.gobackup/, /etc/gobackup/; `.env` beside the file
//     loaded, then os.ExpandEnv over the file; keys lower-cased by viper
//     (model `Sales` is `sales`); the file is watched and reloaded.
//   - schedule: any `schedule:` block registers the model (`enabled` is not
//     read); `cron` in local time, `every` a Go duration; jobs one at a time;
//     failures only logged.
//   - NO signal handler: SIGTERM/SIGINT kill the process at once, leaving a
//     running job's <workdir>/<unix-nanos>/ behind and logging nothing.
//   - pipeline: TempPath <workdir>/<unix-nanos of config load>; mssql via
//     sqlpackage with upstream's argument string split on whitespace, into
//     <TempPath>/<model>/mssql/<db key>/<database>.bacpac (all_databases
//     through sqlcmd; dump hooks with on_exit); external tar with upstream's
//     options and every compress type; openssl encryption; split; storages
//     local, minio and s3 in random order (a failing one does not stop the
//     others); keep from the cycler state, local and <path>/.gobackup-state/
//     (read through a presigned GET); the temp dir always removed; model
//     before_script/after_script; Prometheus metrics.
//   - log lines worded, tagged and coloured as upstream, through one shared
//     logger whose tag is the last one set; also written to
//     $GOBACKUP_DIR/gobackup.log by `run`.
//
// Not implemented (a clear error instead): other database and storage
// types, `archive`, notifiers.
package main

import (
	"fmt"
	"os"

	"github.com/sevlyar/go-daemon"
	"github.com/spf13/viper"
	"github.com/urfave/cli/v2"
)

// version is set at build time, as goreleaser does (without the "v").
var version = "master"

var configFile string

func configFlag(flags ...cli.Flag) []cli.Flag {
	return append(flags, &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "Special a config file", Destination: &configFile})
}

func main() {
	app := cli.NewApp()
	app.Version = version
	app.Name = "gobackup"
	app.Usage = "Backup your databases, files to FTP / SCP / S3 / GCS and other cloud storages."
	app.Commands = []*cli.Command{
		{
			Name:  "perform",
			Flags: configFlag(&cli.StringSliceFlag{Name: "model", Aliases: []string{"m"}, Usage: "Model name that you want perform"}),
			Action: func(ctx *cli.Context) error {
				if err := initConfig(configFile); err != nil {
					return err
				}
				return performModels(append(ctx.StringSlice("model"), ctx.Args().Slice()...))
			},
		},
		{
			Name:  "start",
			Usage: "Start as daemon",
			Flags: configFlag(),
			Action: func(*cli.Context) error {
				fmt.Println("GoBackup starting...")
				arguments := []string{"gobackup", "run"}
				if configFile != "" {
					arguments = append(arguments, "--config", configFile)
				}
				context := &daemon.Context{PidFileName: pidFilePath, PidFilePerm: 0o644, WorkDir: "./", Args: arguments}
				child, err := context.Reborn()
				if err != nil {
					return fmt.Errorf("start failed, please check is there another instance running: %w", err)
				}
				if child != nil {
					return nil
				}
				defer context.Release() //nolint:errcheck
				openLogFile(logFilePath)
				if err := initConfig(configFile); err != nil {
					return err
				}
				startScheduler()
				return nil
			},
		},
		{
			Name:  "run",
			Usage: "Run GoBackup",
			Flags: configFlag(),
			Action: func(*cli.Context) error {
				openLogFile(logFilePath)
				if err := initConfig(configFile); err != nil {
					return err
				}
				startScheduler()
				if !webConfig.Enabled {
					select {}
				}
				return startHTTP()
			},
		},
	}
	if err := app.Run(os.Args); err != nil {
		logger.fatal(err.Error())
	}
}

// performModels runs the named models (all when none is named) one after
// the other and returns the last error.
func performModels(names []string) error {
	selected := []modelConfig{}
	if len(names) == 0 {
		selected = models
	}
	for _, name := range names {
		entry := modelByName(name)
		if entry == nil {
			return fmt.Errorf("model %s not found in %s", name, viper.ConfigFileUsed())
		}
		selected = append(selected, *entry)
	}
	var lastErr error
	for _, entry := range selected {
		if err := perform(entry); err != nil {
			tag(fmt.Sprintf("Model %s", entry.name)).error(err)
			lastErr = err
		}
	}
	return lastErr
}

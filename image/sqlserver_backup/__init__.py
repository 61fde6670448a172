"""The tools of the SQL Server backup image, one console script each (see
pyproject.toml): the configuration checks (`backup-config`, cli), restores,
drills, verification and cleanup (`backup-restore` and friends), status and
coverage, metrics, the proof scheduler, the notification relay, the health
check and the supervisor the entrypoint execs (`backup-supervisor`). image/README.md has a table of the modules.

The configuration checks read a config the way GoBackup v3.1.1 will. For
that, the go_* modules port the Go behaviour GoBackup relies on, one module
per Go library at the version GoBackup pins: go_os_expand (os.Expand),
go_time_duration (time.ParseDuration), go_time_location (time.LoadLocation),
go_strings (strings.Fields/TrimSpace), go_robfig_cron (robfig/cron v3.0.1),
go_gocron (gocron v1.18.0) and go_godotenv (godotenv v1.4.0). They hold no
rule of this project, and tests/test_go_*.py compare each with the Go library
itself, built from the modules GoBackup pins (tests/standins/go.mod).

Why Python ports and not a small Go checker built from those exact modules:
the checks run in two places, the container (the image ships no Go
toolchain) and the Ansible controller, where they are filters
(plugins/filter/backup_config.py) on a machine that may have no Go and, at an
air-gapped site, no way to fetch Go modules. Python is on both already; the
tests against Go keep the ports honest.
"""

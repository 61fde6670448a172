package main

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"sort"
	"strings"
	"time"
)

// GoBackup v3.1.1's notifiers webhook, slack and mail, as they go on the
// wire: the same method, headers, body and log lines; the other types of
// upstream are refused as unknown. on_success and on_failure default to true.

// notifySuccess and notifyFailure word the title and message as upstream.
func notifySuccess(m modelConfig) {
	notify(m, fmt.Sprintf("[GoBackup] OK: Backup %s has successfully", m.name),
		fmt.Sprintf("Backup of %s completed successfully at %s", m.name, time.Now().Local()), true)
}

func notifyFailure(m modelConfig, reason string) {
	notify(m, fmt.Sprintf("[GoBackup] Err: Backup %s has failed", m.name),
		fmt.Sprintf("Backup of %s failed at %s:\n\n%s", m.name, time.Now().Local(), reason), false)
}

func notify(m modelConfig, title, message string, success bool) {
	lg := tag("Notifier")
	lg.infof("Running %d Notifiers", len(m.notifiers))
	for name, config := range m.notifiers {
		settings := config.viper
		settings.SetDefault("on_success", true)
		settings.SetDefault("on_failure", true)
		var send func(title, message string) error
		switch config.kind {
		case "webhook":
			send = webhookNotifier(config, "Webhook")
		case "slack":
			send = webhookNotifier(config, "Slack")
		case "mail":
			mail, err := newMail(config)
			if err != nil {
				lg.error(err)
				continue
			}
			send = mail.notify
		default:
			lg.error(fmt.Errorf("Notifier: %s is not supported", name))
			continue
		}
		if (success && settings.GetBool("on_success")) || (!success && settings.GetBool("on_failure")) {
			if err := send(title, message); err != nil {
				lg.error(err)
			}
		}
	}
}

// webhookNotifier: type webhook posts {"title","message"} (method and
// headers configurable), type slack posts {"text": "<title>\n\n<message>"}.
// A non-200 answer is logged, not returned.
func webhookNotifier(config subConfig, service string) func(title, message string) error {
	settings := config.viper
	method := "POST"
	if service == "Webhook" {
		settings.SetDefault("method", "POST")
		method = settings.GetString("method")
	}
	return func(title, message string) error {
		lg := tag("Notifier: " + service)
		url := settings.GetString("url")
		var payload []byte
		if service == "Slack" {
			payload, _ = json.Marshal(struct {
				Text string `json:"text"`
			}{fmt.Sprintf("%s\n\n%s", title, message)})
		} else {
			payload, _ = json.Marshal(struct {
				Title   string `json:"title"`
				Message string `json:"message"`
			}{title, message})
		}
		lg.infof("Send notification to %s...", url)
		request, err := http.NewRequest(method, url, strings.NewReader(string(payload)))
		if err != nil {
			lg.error(err)
			return err
		}
		request.Header.Set("Content-Type", "application/json")
		if service == "Webhook" {
			for key, value := range settings.GetStringMapString("headers") {
				request.Header.Set(key, value)
			}
		}
		response, err := (&http.Client{}).Do(request)
		if err != nil {
			lg.error(err)
			return err
		}
		defer response.Body.Close()
		body, err := io.ReadAll(response.Body)
		if err != nil {
			return err
		}
		if response.StatusCode != 200 {
			lg.error(fmt.Errorf("status: %d, body: %s", response.StatusCode, string(body)))
			return nil
		}
		lg.info("Notification sent.")
		return nil
	}
}

type mailNotifier struct {
	from, username, password, host, port string
	to                                   []string
	tls                                  bool
}

func newMail(config subConfig) (*mailNotifier, error) {
	settings := config.viper
	settings.SetDefault("port", "25")
	username := settings.GetString("username")
	if username == "" {
		return nil, fmt.Errorf("username is required for mail notifier")
	}
	from := settings.GetString("from")
	if from == "" {
		from = username
	}
	return &mailNotifier{
		from: from, username: username, password: settings.GetString("password"),
		host: settings.GetString("host"), port: settings.GetString("port"),
		to: strings.Split(settings.GetString("to"), ","), tls: settings.GetBool("tls"),
	}, nil
}

// body is upstream's: sorted headers joined by "\n" and the base64 message
// on the next line, with no blank line between headers and body.
func (s *mailNotifier) body(title, message string) string {
	headers := map[string]string{
		"From": s.from, "To": strings.Join(s.to, ","), "Subject": title,
		"Content-Type": `text/plain; charset="utf-8"`, "Content-Transfer-Encoding": "base64",
	}
	keys := make([]string, 0, len(headers))
	for key := range headers {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	lines := make([]string, 0, len(keys))
	for _, key := range keys {
		lines = append(lines, fmt.Sprintf("%s: %s", key, headers[key]))
	}
	return fmt.Sprintf("%s\n%s", strings.Join(lines, "\n"), base64.StdEncoding.EncodeToString([]byte(message)))
}

func (s *mailNotifier) notify(title, message string) error {
	var auth smtp.Auth
	if s.password != "" {
		auth = smtp.PlainAuth("", s.username, s.password, s.host)
	}
	address := s.host + ":" + s.port
	message = s.body(title, message)
	if !s.tls {
		return smtp.SendMail(address, auth, s.from, s.to, []byte(message))
	}
	connection, err := tls.Dial("tcp", address, nil)
	if err != nil {
		return err
	}
	defer connection.Close()
	client, err := smtp.NewClient(connection, s.host)
	if err != nil {
		return err
	}
	if auth != nil {
		if ok, _ := client.Extension("AUTH"); !ok {
			return errors.New("smtp: server doesn't support AUTH")
		}
		if err = client.Auth(auth); err != nil {
			return err
		}
	}
	if err = client.Mail(s.from); err != nil {
		return err
	}
	for _, address := range s.to {
		if err = client.Rcpt(address); err != nil {
			return err
		}
	}
	writer, err := client.Data()
	if err != nil {
		return err
	}
	defer writer.Close()
	if _, err = writer.Write([]byte(message)); err != nil {
		return err
	}
	return client.Quit()
}

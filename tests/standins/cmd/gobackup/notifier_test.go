package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

type received struct {
	method, path string
	header       http.Header
	body         map[string]string
}

func receiver(t *testing.T) (*httptest.Server, chan received) {
	t.Helper()
	requests := make(chan received, 10)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		body := map[string]string{}
		_ = json.Unmarshal(raw, &body)
		requests <- received{r.Method, r.URL.Path, r.Header, body}
	}))
	t.Cleanup(server.Close)
	return server, requests
}

func notifierModel(t *testing.T, notifiers string) modelConfig {
	t.Helper()
	viper.Reset()
	settings := viper.New()
	settings.SetConfigType("yaml")
	if err := settings.ReadConfig(strings.NewReader("notifiers:\n" + notifiers)); err != nil {
		t.Fatal(err)
	}
	return modelConfig{name: "sales", notifiers: subConfigs(settings, "notifiers")}
}

func TestWebhookAndSlackSendWhatUpstreamSends(t *testing.T) {
	server, requests := receiver(t)
	log := captureLog(t)
	m := notifierModel(t, "  hook:\n    type: webhook\n    url: "+server.URL+"/hook\n    headers:\n      X-Token: abc\n"+
		"  chat:\n    type: slack\n    url: "+server.URL+"/slack\n")
	notifyFailure(m, "login failed")
	got := map[string]received{}
	for range 2 {
		request := <-requests
		got[request.path] = request
	}
	hook, chat := got["/hook"], got["/slack"]
	if hook.method != "POST" || hook.header.Get("Content-Type") != "application/json" || hook.header.Get("X-Token") != "abc" {
		t.Errorf("webhook request: %s %v", hook.method, hook.header)
	}
	if hook.body["title"] != "[GoBackup] Err: Backup sales has failed" ||
		!strings.HasPrefix(hook.body["message"], "Backup of sales failed at ") ||
		!strings.HasSuffix(hook.body["message"], ":\n\nlogin failed") {
		t.Errorf("webhook body: %v", hook.body)
	}
	if !strings.HasPrefix(chat.body["text"], "[GoBackup] Err: Backup sales has failed\n\nBackup of sales failed at ") {
		t.Errorf("slack body: %v", chat.body)
	}
	for _, line := range []string{"Running 2 Notifiers", "Send notification to " + server.URL + "/hook...", "Notification sent."} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, log)
		}
	}
}

func TestOnSuccessFalseNotifiesFailuresOnly(t *testing.T) {
	server, requests := receiver(t)
	captureLog(t)
	m := notifierModel(t, "  hook:\n    type: webhook\n    url: "+server.URL+"\n    on_success: false\n")
	notifySuccess(m)
	notifyFailure(m, "boom")
	if request := <-requests; !strings.Contains(request.body["title"], "Err:") {
		t.Errorf("first notification is not the failure: %v", request.body)
	}
	if len(requests) != 0 {
		t.Errorf("success notified although on_success is false")
	}
}

func TestWebhookErrorStatusIsLoggedNotReturned(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("relay down"))
	}))
	defer server.Close()
	log := captureLog(t)
	notifySuccess(notifierModel(t, "  hook:\n    type: webhook\n    url: "+server.URL+"\n"))
	if !strings.Contains(log.String(), "status: 502, body: relay down") {
		t.Errorf("log: %s", log)
	}
}

func TestMailSendsUpstreamsMessage(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	data := make(chan string, 1)
	go func() {
		connection, err := listener.Accept()
		if err != nil {
			return
		}
		defer connection.Close()
		reader := bufio.NewReader(connection)
		reply := func(line string) { _, _ = connection.Write([]byte(line + "\r\n")) }
		reply("220 test")
		var message strings.Builder
		inData := false
		for {
			line, err := reader.ReadString('\n')
			if err != nil {
				return
			}
			switch {
			case inData && line == ".\r\n":
				inData = false
				data <- message.String()
				reply("250 ok")
			case inData:
				message.WriteString(line)
			case strings.HasPrefix(line, "EHLO"):
				reply("250 test")
			case strings.HasPrefix(line, "DATA"):
				inData = true
				reply("354 go on")
			case strings.HasPrefix(line, "QUIT"):
				reply("221 bye")
				return
			default:
				reply("250 ok")
			}
		}
	}()
	host, port, _ := net.SplitHostPort(listener.Addr().String())
	captureLog(t)
	notifyFailure(notifierModel(t, "  mail:\n    type: mail\n    host: "+host+"\n    port: "+port+
		"\n    username: backup@example.com\n    to: ops@example.com,dba@example.com\n"), "boom")
	lines := strings.Split(<-data, "\r\n")
	want := []string{
		"Content-Transfer-Encoding: base64", `Content-Type: text/plain; charset="utf-8"`,
		"From: backup@example.com", "Subject: [GoBackup] Err: Backup sales has failed",
		"To: ops@example.com,dba@example.com",
	}
	if strings.Join(lines[:5], "\n") != strings.Join(want, "\n") {
		t.Errorf("headers: %q", lines[:5])
	}
	if decoded, _ := base64.StdEncoding.DecodeString(lines[5]); !strings.HasSuffix(string(decoded), ":\n\nboom") {
		t.Errorf("body: %q", lines[5])
	}
}

func TestMailWithoutUsernameIsRefused(t *testing.T) {
	log := captureLog(t)
	notifyFailure(notifierModel(t, "  mail:\n    type: mail\n    host: 127.0.0.1\n"), "boom")
	if !strings.Contains(log.String(), "username is required for mail notifier") {
		t.Errorf("log: %s", log)
	}
}

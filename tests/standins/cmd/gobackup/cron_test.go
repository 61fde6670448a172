package main

import (
	"testing"
	"time"
)

func TestNextFollowsTheExpression(t *testing.T) {
	from := time.Date(2026, 11, 23, 12, 51, 35, 0, time.Local) // a Monday
	cases := map[string]time.Time{
		"* * * * *":    time.Date(2026, 11, 23, 12, 52, 0, 0, time.Local),
		"30 * * * *":   time.Date(2026, 11, 23, 13, 30, 0, 0, time.Local),
		"0 2 * * *":    time.Date(2026, 11, 24, 2, 0, 0, 0, time.Local),
		"*/15 * * * *": time.Date(2026, 11, 23, 13, 0, 0, 0, time.Local),
		"0 3 * * 0":    time.Date(2026, 11, 29, 3, 0, 0, 0, time.Local),
		"0 3 * * 7":    time.Date(2026, 11, 29, 3, 0, 0, 0, time.Local),
		"@hourly":      time.Date(2026, 11, 23, 13, 0, 0, 0, time.Local),
	}
	for expression, want := range cases {
		schedule, err := parseCron(expression)
		if err != nil {
			t.Fatalf("%s: %v", expression, err)
		}
		if got := schedule.next(from); !got.Equal(want) {
			t.Errorf("%s: next(%v) = %v, want %v", expression, from, got, want)
		}
	}
}

func TestParseRejectsWhatGocronRejects(t *testing.T) {
	for _, expression := range []string{"* * * *", "0 0 * * * *", "61 * * * *", "a b c d e"} {
		if _, err := parseCron(expression); err == nil {
			t.Errorf("%q was accepted", expression)
		}
	}
}

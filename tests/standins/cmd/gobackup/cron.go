package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// cronSchedule is a standard five-field cron expression (as gocron's Cron()
// takes), evaluated in local time.
type cronSchedule struct {
	fields           [5]map[int]bool
	domStar, dowStar bool
}

var cronBounds = [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}}

var cronNames = map[string]int{
	"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
}

var cronDescriptors = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
	"@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

func cronValue(text string) (int, error) {
	if value, found := cronNames[strings.ToLower(text)]; found {
		return value, nil
	}
	return strconv.Atoi(text)
}

func parseCron(expression string) (*cronSchedule, error) {
	if replacement, found := cronDescriptors[strings.TrimSpace(expression)]; found {
		expression = replacement
	}
	parts := strings.Fields(expression)
	if len(parts) != 5 {
		return nil, fmt.Errorf("expected exactly 5 fields, found %d: [%s]", len(parts), expression)
	}
	schedule := &cronSchedule{domStar: parts[2] == "*", dowStar: parts[4] == "*"}
	for index, part := range parts {
		low, high := cronBounds[index][0], cronBounds[index][1]
		schedule.fields[index] = map[int]bool{}
		for _, item := range strings.Split(part, ",") {
			rangePart, stepPart, hasStep := strings.Cut(item, "/")
			step := 1
			if hasStep {
				parsed, err := strconv.Atoi(stepPart)
				if err != nil || parsed <= 0 {
					return nil, fmt.Errorf("invalid step in %q", item)
				}
				step = parsed
			}
			start, end := low, high
			if rangePart != "*" {
				first, last, isRange := strings.Cut(rangePart, "-")
				var err error
				if start, err = cronValue(first); err != nil {
					return nil, fmt.Errorf("invalid value %q", item)
				}
				end = start
				if isRange {
					if end, err = cronValue(last); err != nil {
						return nil, fmt.Errorf("invalid value %q", item)
					}
				} else if hasStep {
					end = high
				}
			}
			if start < low || end > high || start > end {
				return nil, fmt.Errorf("value out of range in %q", item)
			}
			for value := start; value <= end; value += step {
				schedule.fields[index][value] = true
			}
		}
	}
	if schedule.fields[4][7] {
		schedule.fields[4][0] = true
	}
	return schedule, nil
}

func (s *cronSchedule) matches(t time.Time) bool {
	if !s.fields[0][t.Minute()] || !s.fields[1][t.Hour()] || !s.fields[3][int(t.Month())] {
		return false
	}
	dom, dow := s.fields[2][t.Day()], s.fields[4][int(t.Weekday())]
	switch {
	case s.domStar && s.dowStar:
		return true
	case s.domStar:
		return dow
	case s.dowStar:
		return dom
	}
	return dom || dow
}

// next returns the first matching minute after t.
func (s *cronSchedule) next(t time.Time) time.Time {
	candidate := t.Truncate(time.Minute).Add(time.Minute)
	for i := 0; i < 366*24*60; i++ {
		if s.matches(candidate) {
			return candidate
		}
		candidate = candidate.Add(time.Minute)
	}
	return t.Add(100 * 365 * 24 * time.Hour)
}

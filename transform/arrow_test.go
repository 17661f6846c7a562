package transform

import (
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// TestFastDecimal checks the fast path against decimal128.FromString.
func TestFastDecimal(t *testing.T) {
	for _, s := range []string{"0", "0.00", "12.5", "-12.50", "+3", "999999999.99", "1000000000", "0.001", "1.", ".5", "1e3", "", "-", "12345678901234567890", "00012.30"} {
		for _, ps := range [][2]int32{{12, 2}, {18, 6}, {38, 10}} {
			got, ok := fastDecimal(s, ps[0], ps[1])
			want, err := decimal128.FromString(s, ps[0], ps[1])
			if ok && (err != nil || got != want) {
				t.Errorf("fastDecimal(%q, %d, %d) = %v, FromString = %v, %v", s, ps[0], ps[1], got, want, err)
			}
		}
	}
}

// TestFastDate checks the fast path against ParseDate.
func TestFastDate(t *testing.T) {
	for _, s := range []string{"2024-02-29", "2023-02-29", "1999-12-31", "2001-13-01", "2001-01-00", "2001-01-01T10:00:00Z", "2001-01", "20x1-01-01"} {
		got, ok := fastDate(s)
		want, err := ParseDate(s)
		if ok && (err != nil || got != arrow.Date32FromTime(want)) {
			t.Errorf("fastDate(%q) = %v, ParseDate = %v, %v", s, got, want, err)
		}
	}
}

// TestFastTimestamp checks the fast path against ParseDateTime.
func TestFastTimestamp(t *testing.T) {
	for _, s := range []string{
		"2021-06-08T01:50:49.05Z", "2020-10-30T13:48:01.846275Z", "2017-06-01T04:00:00Z", "2017-06-01T04:00:00+05:30",
		"2017-06-01T04:00:00-08:00", "1969-12-31T23:59:59.9999999Z", "1900-01-01T00:00:00Z", "2024-02-29T12:00:00.123456789Z",
		"2023-02-29T12:00:00Z", "2020-01-01T24:00:00Z", "2020-01-01T10:60:00Z", "2020-01-01T10:00:60Z", "2020-01-01T10:00:00",
		"2020-01-01T10:00:00.Z", "2020-01-01T10:00:00.1234567890Z", "2020-01-01T10:00:00+24:00", "2020-01-01T10:00:00+0530",
		"2020-01-01", "2020-01-01T10:00Z", "2020-01-01T1a:00:00Z", "2020-01-01T10:00:00z",
	} {
		got, ok := fastTimestamp(s)
		want, err := ParseDateTime(s)
		if ok && (err != nil || got != arrow.Timestamp(want.UnixMicro())) {
			t.Errorf("fastTimestamp(%q) = %v, ParseDateTime = %v (%d), %v", s, got, want, want.UnixMicro(), err)
		}
		if !ok && strings.Count(s, ":") == 2 && strings.HasSuffix(s, "Z") && err == nil && len(s) == 20 {
			t.Errorf("fastTimestamp(%q) not handled", s)
		}
	}
}

// TestDaysFromCivil checks the date arithmetic against time.Date for every
// day of four centuries and more.
func TestDaysFromCivil(t *testing.T) {
	for day := time.Date(1599, 1, 1, 0, 0, 0, 0, time.UTC); day.Year() < 2401; day = day.AddDate(0, 0, 1) {
		y, m, d := day.Date()
		if got, want := daysFromCivil(y, int(m), d), day.Unix()/86400; got != want {
			t.Fatalf("daysFromCivil(%d, %d, %d) = %d, want %d", y, m, d, got, want)
		}
		if d == 1 {
			if got, want := daysIn(m, y), day.AddDate(0, 1, -1).Day(); got != want {
				t.Fatalf("daysIn(%v, %d) = %d, want %d", m, y, got, want)
			}
		}
	}
	for _, y := range []int{0, 1, 4, 100, 9999} {
		day := time.Date(y, 3, 1, 0, 0, 0, 0, time.UTC)
		if got, want := daysFromCivil(y, 3, 1), day.Unix()/86400; got != want {
			t.Errorf("daysFromCivil(%d, 3, 1) = %d, want %d", y, got, want)
		}
	}
}

// TestPoolAllocator checks that recycled buffers come back zeroed,
// aligned and of the asked length.
func TestPoolAllocator(t *testing.T) {
	a := new(poolAllocator)
	for _, size := range []int{0, 1, 63, 64, 65, 1000, 4096, 1 << 20, 1<<26 + 1} {
		b := a.Allocate(size)
		if len(b) != size || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%alignment != 0 && cap(b) > 0 {
			t.Fatalf("Allocate(%d): len %d cap %d", size, len(b), cap(b))
		}
		for i := range b {
			b[i] = 0xff
		}
		b = a.Reallocate(size*2+1, b)
		if len(b) != size*2+1 || (size > 0 && b[0] != 0xff) {
			t.Fatalf("Reallocate(%d): len %d", size*2+1, len(b))
		}
		for i := range b {
			b[i] = 0xff
		}
		a.Free(b)
		for range 3 {
			c := a.Allocate(size)
			for i, x := range c[:cap(c)] {
				if x != 0 {
					t.Fatalf("Allocate(%d) after Free: byte %d is %x", size, i, x)
				}
			}
			if len(c) != size {
				t.Fatalf("Allocate(%d) after Free: len %d", size, len(c))
			}
		}
	}
}

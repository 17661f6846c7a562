package extract

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test for them with errors.Is; the wrapping error
// carries the operation and the HTTP status.
var (
	// ErrUnauthorized means the server rejected our credentials or token
	// (HTTP 401 or 403).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrExportFailed means the server reported that the export job failed.
	ErrExportFailed = errors.New("export failed on the server")
	// ErrExportExpired means the job or its files are gone (HTTP 404 or 410
	// on the status URL, 410 on a file); a new export must be started.
	ErrExportExpired = errors.New("export expired")
	// ErrTransient marks failures that are safe to retry later: 429, 5xx,
	// network errors, an exhausted wait budget.
	ErrTransient = errors.New("transient failure")
	// ErrProtocol means the server answered outside the Bulk Data protocol
	// in a way we cannot work around.
	ErrProtocol = errors.New("protocol error")
	// ErrVerify means a downloaded file did not match its manifest entry.
	ErrVerify = errors.New("verification failed")
	// ErrTooLarge means a file exceeded a download limit
	// (Client.MaxFileSize or Client.MaxDecompressionRatio). It is never
	// ErrTransient: the same file fails the same way until the limit is
	// raised.
	ErrTooLarge = errors.New("file over the download limits")
	// ErrUnknownHost means the server's host name does not resolve (a
	// DNS "no such host" on the first contact, twice): a wrong URL.
	ErrUnknownHost = errors.New("unknown host")
)

// StatusError is an unexpected HTTP answer. Its message never includes the
// response body beyond a short OperationOutcome summary, which servers use
// for diagnostics, not for resource content.
type StatusError struct {
	Op      string // what we were doing: "kick-off", "status", "download"
	Status  int    // HTTP status code
	Summary string // OperationOutcome diagnostics, when the server sent one
	kind    error  // one of the sentinels, or nil
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: HTTP %d", e.Op, e.Status)
	if e.kind != nil {
		msg += " (" + e.kind.Error() + ")"
	}
	if e.Summary != "" {
		msg += ": " + e.Summary
	}
	return msg
}

// Unwrap lets errors.Is match the sentinel that classifies the status.
func (e *StatusError) Unwrap() error { return e.kind }

// classify maps an HTTP status to the sentinel that says what a caller can
// do about it.
func classify(status int) error {
	switch {
	case status == 401 || status == 403:
		return ErrUnauthorized
	case status == 404 || status == 410:
		return ErrExportExpired
	case status == 429 || status >= 500:
		return ErrTransient
	default:
		return nil
	}
}

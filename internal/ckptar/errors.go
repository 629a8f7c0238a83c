package ckptar

import (
	"errors"
	"fmt"
)

// ErrInvalid is matched by every error that rejects an archive for its
// content, as opposed to a failing reader, a full disk or a cancelled
// context.
var ErrInvalid = errors.New("invalid checkpoint archive")

// EntryError rejects an archive because of one entry, or of the stream
// around it. It matches [ErrInvalid].
type EntryError struct {
	// Name is the entry's name as the archive spells it, "" when the
	// stream is at fault before its first entry.
	Name string
	// Reason says what is wrong, in a few words.
	Reason string
	// Err is the decoder's or tar reader's error, if one caused it.
	Err error
}

// Error quotes the name: it comes from the archive and may hold control
// characters meant for a terminal.
func (e *EntryError) Error() string {
	msg := e.Reason
	if e.Name != "" {
		msg = fmt.Sprintf("entry %q: %s", e.Name, e.Reason)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying decoder or tar error.
func (e *EntryError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrInvalid].
func (e *EntryError) Is(target error) bool { return target == ErrInvalid }

func reject(name, format string, args ...any) error {
	return &EntryError{Name: name, Reason: fmt.Sprintf(format, args...)}
}

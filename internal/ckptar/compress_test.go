package ckptar

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		want  Compression
	}{
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0}, Zstd},
		{"gzip", []byte{0x1f, 0x8b, 8, 0}, Gzip},
		{"gzip magic alone", []byte{0x1f, 0x8b}, Gzip},
		{"tar", []byte("checkpoint.json\x00\x00\x00"), None},
		{"one byte", []byte{0x28}, None},
		{"zstd magic cut", []byte{0x28, 0xb5, 0x2f}, None},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(bytes.NewReader(tt.input))
			got, err := detect(br)
			if err != nil || got != tt.want {
				t.Fatalf("detect = %q, %v; want %q", got, err, tt.want)
			}
			if n := br.Buffered(); n != len(tt.input) {
				t.Errorf("detect consumed input: %d of %d bytes left", n, len(tt.input))
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		_, err := detect(bufio.NewReader(bytes.NewReader(nil)))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("detect(empty): %v, want ErrInvalid", err)
		}
	})
}

package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker-cr/dockercr"
)

// prune removes all but the newest keep checkpoints this program made
// of container, and returns the names it removed. Checkpoints made by
// hand, under names this program does not make, stay. Listing and
// removal go through the library, which never follows a symbolic link
// and removes only directories that hold a checkpoint.
func prune(d *dockercr.Docker, container string, keep int) ([]string, error) {
	all, err := d.Checkpoints(container)
	if err != nil {
		return nil, err
	}
	var own []string
	for _, c := range all {
		if ownName(c.Name) {
			own = append(own, c.Name)
		}
	}
	if len(own) <= keep {
		return nil, nil
	}
	var removed []string
	var errs []error
	for _, n := range own[:len(own)-keep] {
		if err := d.RemoveCheckpoint(container, n); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", n, err))
			continue
		}
		removed = append(removed, n)
	}
	return removed, errors.Join(errs...)
}

// ownName reports whether name is one this program makes.
func ownName(name string) bool {
	ts, ok := strings.CutPrefix(name, namePrefix)
	if !ok || dockercr.ValidateName(name) != nil {
		return false
	}
	_, err := time.Parse(nameLayout, ts)
	return err == nil
}

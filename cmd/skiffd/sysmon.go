package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
)

// The Go runtime's sysmon thread goes into a deep sleep whenever every P is
// idle, and the first system call after that wakes it with its poll interval
// reset to 20 µs; it backs off only after about 50 polls that found nothing
// to do. A Raft node is idle between messages hundreds of times a second, so
// its sysmon spends most of its life polling every 20 µs, each poll a
// nanosleep and, on a virtual machine, a hypervisor exit: 19.5% of a
// follower's CPU during inserts on the README's machine (`perf`). With a
// schedtrace period set, the runtime keeps sysmon out of that deep sleep
// (so that it can print on time), and its interval then resets to 20 µs only
// after it really took a P back from a blocked system call. The period is
// the longest GODEBUG takes, 2^31-1 ms (24.8 days): the runtime prints one
// SCHED line to stderr once the machine has been up that long (its clock
// counts from boot, so at start on a machine up longer) and every period
// after, and the scheduler's state on a fatal error.
//
// GODEBUG is read once, when the runtime starts, so skiffd sets it by
// re-executing itself. An operator's own schedtrace, schedtrace=0 included,
// is left alone: GODEBUG=schedtrace=0 restores the runtime's default.
const (
	schedtraceKey   = "schedtrace"
	sysmonGODEBUG   = schedtraceKey + "=2147483647"
	godebugEnvName  = "GODEBUG"
	godebugEnvEqual = godebugEnvName + "="
)

// sysmonEnv returns environ with sysmonGODEBUG added to GODEBUG, and true,
// unless GODEBUG already sets schedtrace, in which case it returns environ
// unchanged and false.
func sysmonEnv(environ []string) ([]string, bool) {
	at := -1
	for i, kv := range environ {
		if strings.HasPrefix(kv, godebugEnvEqual) {
			at = i // the first one is what the runtime reads
			break
		}
	}
	if at < 0 {
		return append(environ[:len(environ):len(environ)], godebugEnvEqual+sysmonGODEBUG), true
	}
	value := strings.TrimPrefix(environ[at], godebugEnvEqual)
	for _, field := range strings.Split(value, ",") {
		if key, _, _ := strings.Cut(field, "="); key == schedtraceKey {
			return environ, false
		}
	}
	if value != "" {
		value += ","
	}
	out := append([]string(nil), environ...)
	out[at] = godebugEnvEqual + value + sysmonGODEBUG
	return out, true
}

// keepSysmonAwake re-executes skiffd with sysmonGODEBUG in its environment
// unless GODEBUG already sets schedtrace. It returns only if it did not
// re-execute: with nil when there was nothing to do, or with why the exec
// failed (skiffd then runs on with the runtime's default).
func keepSysmonAwake() error {
	env, changed := sysmonEnv(os.Environ())
	if !changed {
		return nil
	}
	// The binary's own path, not /proc/self/exe: the kernel names the
	// process after the path's last element, and `pkill skiffd`, `ps -C`
	// and top must still find a process named skiffd. (A binary put at
	// that path since the start runs instead, as it would at a restart.)
	exe, err := os.Executable()
	if err == nil {
		err = syscall.Exec(exe, os.Args, env)
	}
	if runtime.GOOS == "linux" {
		// The path is gone (the binary was deleted since it started): the
		// running binary itself, under the name "exe".
		err = errors.Join(err, syscall.Exec("/proc/self/exe", os.Args, env))
	}
	return fmt.Errorf("re-executing with %s %s: %w", godebugEnvName, sysmonGODEBUG, err)
}

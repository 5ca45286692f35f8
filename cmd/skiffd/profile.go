package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// profiles are rqlited's -cpu-profile, -mem-profile and -trace-profile:
// files written while the daemon runs (CPU, execution trace) or as it
// exits (heap). Empty paths write nothing.
type profiles struct {
	cpu, mem, trace string
	cpuF, traceF    *os.File
}

// start opens the files and starts the CPU profile and the trace; a file
// that cannot be created refuses the start (the user asked for it).
func (p *profiles) start() error {
	if p.cpu != "" {
		f, err := os.Create(p.cpu)
		if err != nil {
			return fmt.Errorf("-cpu-profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("-cpu-profile: %w", err)
		}
		p.cpuF = f
	}
	if p.trace != "" {
		f, err := os.Create(p.trace)
		if err != nil {
			p.stop()
			return fmt.Errorf("-trace-profile: %w", err)
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			p.stop()
			return fmt.Errorf("-trace-profile: %w", err)
		}
		p.traceF = f
	}
	return nil
}

// stop ends the CPU profile and the trace and writes the heap profile.
func (p *profiles) stop() error {
	var errs []error
	if p.cpuF != nil {
		pprof.StopCPUProfile()
		errs = append(errs, p.cpuF.Close())
		p.cpuF = nil
	}
	if p.traceF != nil {
		trace.Stop()
		errs = append(errs, p.traceF.Close())
		p.traceF = nil
	}
	if p.mem != "" {
		f, err := os.Create(p.mem)
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("-mem-profile: %w", err))...)
		}
		runtime.GC() // the heap profile shows live objects as of the last GC
		errs = append(errs, pprof.WriteHeapProfile(f), f.Close())
	}
	return errors.Join(errs...)
}

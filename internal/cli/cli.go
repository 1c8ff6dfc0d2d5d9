// Package cli holds what every xfskit front end shares: exit codes that
// follow the tools they replace, and running a cobra command.
package cli

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes shared by the tools (check follows xfs_repair -n).
const (
	ExitOK         = 0
	ExitCorrupt    = 1
	ExitDirtyLog   = 2
	ExitUsage      = 3
	ExitIOError    = 4
	ExitNotYet     = 2 // "not implemented yet" stubs
	ExitGenericErr = 1
)

// ExitError carries an exit status out of a command's RunE.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exitf returns an *ExitError with a formatted message.
func Exitf(code int, format string, args ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

// Main runs cmd and exits the process with the right status. Usage errors
// (bad flags, wrong argument count) exit with usageCode.
// Every tool gets a hidden --cpuprofile FILE for benchmarking.
func Main(cmd *cobra.Command, usageCode int) {
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	stop := profile(cmd)
	err := cmd.Execute()
	stop()
	if err == nil {
		os.Exit(ExitOK)
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.Name(), ee.Err)
		}
		os.Exit(ee.Code)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.Name(), err)
	if isUsage(err) {
		fmt.Fprintf(os.Stderr, "Try '%s --help' for more information.\n", cmd.Name())
		os.Exit(usageCode)
	}
	os.Exit(ExitGenericErr)
}

// profile adds the hidden --cpuprofile flag to cmd; the returned function
// ends the profile, if one was started.
func profile(cmd *cobra.Command) func() {
	var path string
	cmd.PersistentFlags().StringVar(&path, "cpuprofile", "", "write a CPU profile to this file")
	cmd.PersistentFlags().MarkHidden("cpuprofile")
	stop := func() {}
	prev := cmd.PersistentPreRunE
	cmd.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		if path != "" {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				return err
			}
			stop = func() { pprof.StopCPUProfile(); f.Close() }
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
	return func() { stop() }
}

// UsageError marks an error as a usage error.
type UsageError struct{ Err error }

func (u *UsageError) Error() string { return u.Err.Error() }
func (u *UsageError) Unwrap() error { return u.Err }

// Usagef returns a usage error.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Errorf(format, args...)}
}

func isUsage(err error) bool {
	var u *UsageError
	if errors.As(err, &u) {
		return true
	}
	// cobra's own flag/arg errors are plain errors created before RunE.
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand", "flag needs an argument", "accepts ", "requires at least", "invalid argument", "unknown command"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// NotYet is the RunE of a tool that is not built yet.
func NotYet(tool string) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		return Exitf(ExitNotYet, "%s is not implemented yet", tool)
	}
}

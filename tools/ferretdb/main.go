// Command ferretdb runs FerretDB 1.24.2 (the MongoDB wire protocol over SQLite) through
// its embeddable package, for modeldock's MongoDB store tests on machines without mongod.
//
// Building FerretDB's own cmd/ferretdb from the module proxy gives a binary that panics
// at start (it expects version files that only its release build generates); the
// embeddable package has no such requirement. The flags mirror the upstream ones.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "listen TCP address")
	handler := flag.String("handler", "sqlite", "backend handler (only sqlite is built in here)")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite URI (a directory, ending with /)")
	telemetry := flag.String("telemetry", "disable", "telemetry is always disabled in the embeddable build")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()

	if *version {
		fmt.Println("ferretdb v1.24.2 (embedded build for modeldock tests)")
		return
	}
	if *handler != "sqlite" {
		fmt.Fprintln(os.Stderr, "only --handler=sqlite is supported")
		os.Exit(2)
	}
	_ = telemetry

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "bad --log-level:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: *sqliteURL,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("FerretDB listening", "addr", *listen, "uri", f.MongoDBURI())
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		logger.Error("FerretDB stopped", "error", err)
		os.Exit(1)
	}
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"spoolgate/protocol"
)

func runSend(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("send", "-addr HOST:PORT [-config PATH] [-timeout D] [MESSAGE...]",
		"Sends each MESSAGE (or each line of stdin) on one connection and prints each reply.\n"+
			"A message is a spool line as typed (UTF-8), sent in the dialect of -config (its protocol.* keys;\n"+
			"without -config the default dialect): converted to its charset and framed as the sender frames a\n"+
			"line (under framing lf a length field first unless the message starts with its own correct one).\n"+
			"A message that is not valid in the dialect is sent as typed, framed, with a note on stderr.\n"+
			"Replies are printed decoded to UTF-8. Exit 0 when every reply is ok (200), else 1.", stderr)
	addr := fs.String("addr", "", "HOST:PORT of the receiver (required)")
	path := fs.String("config", "", "config file whose dialect (protocol.*) to speak (default: the default dialect)")
	timeout := fs.Duration("timeout", 5*time.Second, "connect, and wait for each reply")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *addr == "" {
		fmt.Fprintln(stderr, "spoolgate send: -addr HOST:PORT is required")
		return 2
	}
	d := protocol.DefaultDialect()
	if *path != "" {
		cfg, ok := loadConfig(*path, stderr)
		if !ok {
			return 2
		}
		d = cfg.Protocol.Dialect
	}
	msgs, code := sendMessages(fs.Args(), stdin, stderr)
	if code != 0 {
		return code
	}
	conn, err := net.DialTimeout("tcp", *addr, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "spoolgate send: cannot connect to %s: %v\n", *addr, err)
		return 1
	}
	defer conn.Close()
	rd := d.NewReader(bufio.NewReader(conn), protocol.MaxMessageBytes)
	all200 := true
	for _, m := range msgs {
		framed, err := frame(d, m, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "spoolgate send: %v\n", err)
			return 1
		}
		_ = conn.SetDeadline(time.Now().Add(*timeout))
		if _, err := conn.Write(framed); err != nil {
			fmt.Fprintf(stderr, "spoolgate send: write to %s: %v\n", *addr, err)
			return 1
		}
		reply, err := rd.ReadMessage()
		if err != nil {
			fmt.Fprintf(stderr, "spoolgate send: no reply from %s: %v\n", *addr, err)
			return 1
		}
		fmt.Fprintln(stdout, strings.TrimRight(d.Text(reply), "\r"))
		if r, err := d.ParseReply(reply); err != nil || r.Code != protocol.CodeOK {
			all200 = false
		}
	}
	if !all200 {
		return 1
	}
	return 0
}

// sendMessages returns the messages of send: args, else the lines of
// stdin that are not empty; code is not 0 when there are none or stdin
// fails.
func sendMessages(args []string, stdin io.Reader, stderr io.Writer) (msgs []string, code int) {
	msgs = args
	if len(msgs) == 0 {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64*1024), 4*protocol.MaxMessageBytes+1) // UTF-8 typed: up to 4 bytes a wire byte's character
		for sc.Scan() {
			if line := strings.TrimRight(sc.Text(), "\r"); line != "" {
				msgs = append(msgs, line)
			}
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintf(stderr, "spoolgate send: read stdin: %v\n", err)
			return nil, 1
		}
	}
	if len(msgs) == 0 {
		fmt.Fprintln(stderr, "spoolgate send: no messages")
		return nil, 2
	}
	return msgs, 0
}

// frame returns m, a spool line typed in UTF-8, in the charset of d and
// framed for the wire as the sender frames a line (Dialect.AppendResult).
// A line that is not valid in the dialect is framed as it is (a test of
// the receiver's 400s), with a note on stderr.
func frame(d *protocol.Dialect, m string, stderr io.Writer) ([]byte, error) {
	line, err := d.FromUTF8(m)
	if err != nil {
		return nil, fmt.Errorf("message %q: %w", cut(m), err)
	}
	out, err := d.AppendResult(nil, line)
	if err == nil {
		return out, nil
	}
	fmt.Fprintf(stderr, "note: message %q is not valid in the dialect (%v): sent as typed\n", cut(m), err)
	if out, err = d.Frame(nil, line); err != nil {
		return nil, fmt.Errorf("message %q: %w", cut(m), err)
	}
	return out, nil
}

// cut returns the start of m for a message about it.
func cut(m string) string {
	if r := []rune(m); len(r) > 20 {
		return string(r[:20]) + "…"
	}
	return m
}

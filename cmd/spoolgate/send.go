package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"spoolgate/protocol"
)

func runSend(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("send", "-addr HOST:PORT [-timeout D] [MESSAGE...]",
		"Sends each MESSAGE (or each line of stdin) on one connection and prints each reply.\n"+
			"A message that does not start with its own correct length field gets one prepended.\n"+
			"Exit 0 when every reply is 200, else 1.", stderr)
	addr := fs.String("addr", "", "HOST:PORT of the receiver (required)")
	timeout := fs.Duration("timeout", 5*time.Second, "connect, and wait for each reply")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *addr == "" {
		fmt.Fprintln(stderr, "spoolgate send: -addr HOST:PORT is required")
		return 2
	}
	msgs := fs.Args()
	if len(msgs) == 0 {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64*1024), protocol.MaxMessageBytes+1)
		for sc.Scan() {
			if line := strings.TrimRight(sc.Text(), "\r"); line != "" {
				msgs = append(msgs, line)
			}
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintf(stderr, "spoolgate send: read stdin: %v\n", err)
			return 1
		}
	}
	if len(msgs) == 0 {
		fmt.Fprintln(stderr, "spoolgate send: no messages")
		return 2
	}
	conn, err := net.DialTimeout("tcp", *addr, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "spoolgate send: cannot connect to %s: %v\n", *addr, err)
		return 1
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	all200 := true
	for _, m := range msgs {
		framed, err := frame(m)
		if err != nil {
			fmt.Fprintf(stderr, "spoolgate send: %v\n", err)
			return 1
		}
		_ = conn.SetDeadline(time.Now().Add(*timeout))
		if _, err := conn.Write(framed); err != nil {
			fmt.Fprintf(stderr, "spoolgate send: write to %s: %v\n", *addr, err)
			return 1
		}
		reply, err := br.ReadString('\n')
		if err != nil && reply == "" {
			fmt.Fprintf(stderr, "spoolgate send: no reply from %s: %v\n", *addr, err)
			return 1
		}
		reply = strings.TrimRight(reply, "\r\n")
		fmt.Fprintln(stdout, reply)
		if r, err := protocol.ParseReply([]byte(reply)); err != nil || r.Code != protocol.CodeOK {
			all200 = false
		}
		if err != nil { // the reply ended at EOF: the peer closed
			break
		}
	}
	if !all200 {
		return 1
	}
	return 0
}

// frame returns m with its LF, prepending the length field unless m already
// starts with its own correct one.
func frame(m string) ([]byte, error) {
	if len(m) >= 5 && m[4] == '|' && fmt.Sprintf("%04d", len(m)+1) == m[:4] {
		return []byte(m + "\n"), nil
	}
	out, err := protocol.AppendFrame(nil, []byte(m))
	if err != nil {
		return nil, fmt.Errorf("message %q…: %w", m[:min(len(m), 20)], err)
	}
	return bytes.Clone(out), nil
}

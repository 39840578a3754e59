// Command minproxy is a measuring stick for the gateway benchmark, not a
// product: the least a goroutine-per-connection Go proxy can do for
// HTTP/1.1 requests and answers with Content-Length. Each client connection
// gets its own keep-alive upstream connection; nothing is parsed beyond the
// head's end and Content-Length. Beside nginx it shows how much of the
// gateway's cost per request is Go's connection model and how much is the
// gateway's own work.
//
//	minproxy -listen 127.0.0.1:8082 -upstream 127.0.0.1:8000
package main

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "address to serve")
	up := flag.String("upstream", "127.0.0.1:8000", "upstream address")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, *up)
	}
}

var contentLength = []byte("content-length:")

// readMessage reads one head and its Content-Length body into buf[:0].
func readMessage(br *bufio.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		buf = append(buf, line...)
		if len(line) <= 2 {
			break
		}
		if len(line) > len(contentLength) && bytes.EqualFold(line[:len(contentLength)], contentLength) {
			if n, err = strconv.Atoi(string(bytes.TrimSpace(line[len(contentLength):]))); err != nil {
				return nil, err
			}
		}
	}
	head := len(buf)
	buf = slices.Grow(buf, n)[:head+n]
	_, err := io.ReadFull(br, buf[head:])
	return buf, err
}

func serve(c net.Conn, up string) {
	defer c.Close()
	u, err := net.Dial("tcp", up)
	if err != nil {
		log.Print(err)
		return
	}
	defer u.Close()
	cr, ur := bufio.NewReader(c), bufio.NewReader(u)
	var req, resp []byte
	for {
		if req, err = readMessage(cr, req); err != nil {
			return
		}
		if _, err = u.Write(req); err != nil {
			return
		}
		if resp, err = readMessage(ur, resp); err != nil {
			return
		}
		if _, err = c.Write(resp); err != nil {
			return
		}
	}
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
//
// A Go HTTPS server and client for the TLS tests, standard library only
// (crypto/tls: the (*Conn).Read and Write podtap hooks), HTTP/1.1.
//
//	gotls serve PORT CERT KEY  GET /n/K answers body(K), POST /echo echoes;
//	                           CERT "-": plain HTTP, to compare with;
//	                           CERT "auto": a self-signed certificate made
//	                           here (no openssl where the kernel matrix runs)
//	gotls client URL OUT       keep-alive sizes 1 B to 1 MiB, a POST, then
//	                           50 parallel connections to URL
//	                           (https://127.0.0.1:PORT); writes what it
//	                           sent and each connection's local address
//	                           to OUT as JSON
//	gotls wrapped URL OUT      12 connections at once, every other one's
//	                           tls.Conn over a wrapper of its net.Conn (as
//	                           a byte-counting middleware does), whose
//	                           first field points at small integers
//	                           (socket numbers of the others); writes each
//	                           one's local address, size, wrapped to OUT
//	gotls reuse URL OUT        the same, one connection at a time on one
//	                           goroutine, plain and wrapped in turn with a
//	                           collection between, so that a Conn's
//	                           address is handed to the next
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"math/big"
	"strings"
	"sync"
	"time"
)

// body is tls_server.py's body(): K bytes, different for each K.
func body(k int) []byte {
	var b bytes.Buffer
	for b.Len() < k {
		fmt.Fprintf(&b, "%d:", k)
	}
	return b.Bytes()[:k]
}

func serve(port, cert, key string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/n/", func(w http.ResponseWriter, r *http.Request) {
		k, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/n/"))
		if err != nil || k < 0 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(k))
		w.Write(body(k))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
	srv := &http.Server{
		Addr:    "127.0.0.1:" + port,
		Handler: mux,
		// HTTP/1.1 only: no "h2" offered in ALPN
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	switch cert {
	case "-":
		return srv.ListenAndServe()
	case "auto":
		c, err := selfSigned()
		if err != nil {
			return err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{c}}
		return srv.ListenAndServeTLS("", "")
	}
	return srv.ListenAndServeTLS(cert, key)
}

// selfSigned is a certificate for localhost, valid for a day.
func selfSigned() (tls.Certificate, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	t := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, t, t, &k.PublicKey, k)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, nil
}

type conn struct {
	Local string `json:"local"`
	N     int    `json:"n"`
}

type truth struct {
	Keepalive struct {
		Local string `json:"local"`
		Sizes []int  `json:"sizes"`
		Post  int    `json:"post"`
	} `json:"keepalive"`
	Parallel []conn `json:"parallel"`
}

// client makes one connection per http.Client and remembers its address.
func client() (*http.Client, *string) {
	local := new(string)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: false,
		MaxConnsPerHost:   1,
		DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, n, a)
			if err == nil {
				*local = c.LocalAddr().String()
			}
			return c, err
		},
	}
	return &http.Client{Transport: tr}, local
}

func get(c *http.Client, url string, want []byte) error {
	r, err := c.Get(url)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, want) {
		return fmt.Errorf("%s: %d bytes differ from what was sent", url, len(b))
	}
	return nil
}

func run(base, out string) error {
	var t truth
	c, local := client()
	t.Keepalive.Sizes = []int{1, 2, 100, 4096, 16384, 16385, 65536, 1 << 20}
	for _, k := range t.Keepalive.Sizes {
		if err := get(c, fmt.Sprintf("%s/n/%d", base, k), body(k)); err != nil {
			return err
		}
	}
	post := bytes.Repeat([]byte{0, 1, 2, 0xfe, 0xff, 'x'}, 12800)
	r, err := c.Post(base+"/echo", "application/octet-stream", bytes.NewReader(post))
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !bytes.Equal(b, post) {
		return fmt.Errorf("POST /echo: the echo differs")
	}
	t.Keepalive.Post = len(post)
	t.Keepalive.Local = *local
	c.CloseIdleConnections()

	t.Parallel = make([]conn, 50)
	errs := make([]error, 50)
	var wg sync.WaitGroup
	for i := range t.Parallel {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, local := client()
			n := 2000 + i
			errs[i] = get(c, fmt.Sprintf("%s/n/%d", base, n), body(n))
			t.Parallel[i] = conn{*local, n}
			c.CloseIdleConnections()
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	j, _ := json.Marshal(t)
	return os.WriteFile(out, j, 0o644)
}

// counted is what a metering wrapper keeps; its third word is a small
// integer that a reader of the wrong type would take for a descriptor.
type counted struct{ rx, tx, id int64 }

type metered struct {
	st *counted
	net.Conn
}

func (m metered) Read(b []byte) (int, error) {
	n, err := m.Conn.Read(b)
	m.st.rx += int64(n)
	return n, err
}

type wrappedConn struct {
	Local   string `json:"local"`
	N       int    `json:"n"`
	Wrapped bool   `json:"wrapped"`
}

func wrapped(base, out string) error {
	res := make([]wrappedConn, 12)
	errs := make([]error, 12)
	var wg sync.WaitGroup
	for i := range res {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w := i%2 == 1
			tr := &http.Transport{
				DialTLSContext: func(ctx context.Context, n, a string) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, n, a)
					if err != nil {
						return nil, err
					}
					res[i].Local = c.LocalAddr().String()
					if w {
						c = metered{&counted{id: int64(i + 1)}, c}
					}
					t := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
					return t, t.HandshakeContext(ctx)
				},
			}
			n := 3000 + i
			res[i].N, res[i].Wrapped = n, w
			errs[i] = get(&http.Client{Transport: tr}, fmt.Sprintf("%s/n/%d", base, n), body(n))
			tr.CloseIdleConnections()
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	j, _ := json.Marshal(res)
	return os.WriteFile(out, j, 0o644)
}

// one connection, over a wrapper or not, a request with Connection: close
func oneRaw(hostport string, n int, wrap bool) (wrappedConn, error) {
	r := wrappedConn{N: n, Wrapped: wrap}
	c, err := net.Dial("tcp", hostport)
	if err != nil {
		return r, err
	}
	r.Local = c.LocalAddr().String()
	if wrap {
		c = metered{&counted{id: int64(n%5 + 3)}, c}
	}
	t := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	defer t.Close()
	fmt.Fprintf(t, "GET /n/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", n)
	b, err := io.ReadAll(t)
	if err != nil {
		return r, err
	}
	if !bytes.HasSuffix(b, body(n)) {
		return r, fmt.Errorf("/n/%d: the response is not what was sent", n)
	}
	return r, nil
}

func reuse(base, out string) error {
	hostport := strings.TrimPrefix(base, "https://")
	var res []wrappedConn
	for i := 0; i < 30; i++ {
		for _, w := range []bool{false, true} {
			n := 4000 + i
			if w {
				n = 5000 + i
			}
			r, err := oneRaw(hostport, n, w)
			if err != nil {
				return err
			}
			res = append(res, r)
			runtime.GC()
		}
	}
	j, _ := json.Marshal(res)
	return os.WriteFile(out, j, 0o644)
}

func main() {
	var err error
	switch {
	case len(os.Args) == 5 && os.Args[1] == "serve":
		err = serve(os.Args[2], os.Args[3], os.Args[4])
	case len(os.Args) == 4 && os.Args[1] == "client":
		err = run(os.Args[2], os.Args[3])
	case len(os.Args) == 4 && os.Args[1] == "wrapped":
		err = wrapped(os.Args[2], os.Args[3])
	case len(os.Args) == 4 && os.Args[1] == "reuse":
		err = reuse(os.Args[2], os.Args[3])
	default:
		err = fmt.Errorf("usage: gotls serve PORT CERT KEY | gotls client URL OUT | gotls wrapped|reuse URL OUT")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gotls:", err)
		os.Exit(1)
	}
}

// Command httpcheck is a container health probe for FROM-scratch images,
// which have no shell, curl or wget: it GETs one URL and exits 0 on a 2xx
// answer within the timeout, 1 otherwise (printing why on stderr).
//
//	httpcheck http://127.0.0.1:8080/readyz
//	httpcheck -timeout 2s http://127.0.0.1:8222/healthz?js-enabled-only=true
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "give up after this long")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: httpcheck [-timeout D] URL")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(check(flag.Arg(0), *timeout))
}

func check(url string, timeout time.Duration) int {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "httpcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(os.Stderr, "httpcheck: %s: %s: %s\n", url, resp.Status, body)
		return 1
	}
	return 0
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)

// keploy_decode reads a Keploy test set as Keploy would: YAML decoded by
// gopkg.in/yaml.v3 into structs that carry Keploy's own field names (its
// pkg/models: HTTPReq, HTTPResp, GenericSchema), and prints what came out
// as JSON, bodies in base64 so that every byte can be compared. A field
// Keploy does not have is an error here, as it would be lost there.
//
// Usage: keploy_decode TEST-SET-DIR > decoded.json
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"
)

type httpReq struct {
	Method     string            `yaml:"method"`
	ProtoMajor int               `yaml:"proto_major"`
	ProtoMinor int               `yaml:"proto_minor"`
	URL        string            `yaml:"url"`
	URLParams  map[string]string `yaml:"url_params,omitempty"`
	Header     map[string]string `yaml:"header"`
	Body       string            `yaml:"body"`
	Timestamp  string            `yaml:"timestamp"`
}

type httpResp struct {
	StatusCode    int               `yaml:"status_code"`
	Header        map[string]string `yaml:"header"`
	Body          string            `yaml:"body"`
	StatusMessage string            `yaml:"status_message"`
	ProtoMajor    int               `yaml:"proto_major"`
	ProtoMinor    int               `yaml:"proto_minor"`
	Timestamp     string            `yaml:"timestamp"`
}

type message struct {
	Type string `yaml:"type" json:"type"`
	Data string `yaml:"data" json:"data"`
}

type payload struct {
	Origin  string    `yaml:"origin"`
	Message []message `yaml:"message"`
}

type spec struct {
	Metadata         map[string]string              `yaml:"metadata"`
	Req              *httpReq                       `yaml:"req"`
	Resp             *httpResp                      `yaml:"resp"`
	Objects          []interface{}                  `yaml:"objects"`
	Assertions       map[string]map[string][]string `yaml:"assertions"`
	Created          int64                          `yaml:"created"`
	ReqTimestampMock string                         `yaml:"reqTimestampMock"`
	ResTimestampMock string                         `yaml:"resTimestampMock"`
	GenericRequests  []payload                      `yaml:"genericrequests"`
	GenericResponses []payload                      `yaml:"genericresponses"`
	ReqTSGeneric     string                         `yaml:"reqtimestampmock"`
	ResTSGeneric     string                         `yaml:"restimestampmock"`
}

type doc struct {
	Version      string `yaml:"version"`
	Kind         string `yaml:"kind"`
	Name         string `yaml:"name"`
	Spec         spec   `yaml:"spec"`
	Curl         string `yaml:"curl"`
	ConnectionID string `yaml:"connectionId"`
}

type out struct {
	File       string            `json:"file"`
	Kind       string            `json:"kind"`
	Name       string            `json:"name"`
	Method     string            `json:"method,omitempty"`
	URL        string            `json:"url,omitempty"`
	URLParams  map[string]string `json:"url_params,omitempty"`
	ReqHeader  map[string]string `json:"req_header,omitempty"`
	ReqBody    []byte            `json:"req_body,omitempty"`
	Status     int               `json:"status,omitempty"`
	RespHeader map[string]string `json:"resp_header,omitempty"`
	RespBody   []byte            `json:"resp_body,omitempty"`
	Noise      []string          `json:"noise,omitempty"`
	Requests   []message         `json:"requests,omitempty"`
	Responses  []message         `json:"responses,omitempty"`
}

func decodeAll(path string, r io.Reader) ([]out, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var res []out
	for {
		var d doc
		err := dec.Decode(&d)
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if d.Version != "api.keploy.io/v1beta1" {
			return nil, fmt.Errorf("%s: version %q", path, d.Version)
		}
		o := out{File: filepath.Base(path), Kind: d.Kind, Name: d.Name}
		if q := d.Spec.Req; q != nil {
			o.Method, o.URL, o.URLParams = q.Method, q.URL, q.URLParams
			o.ReqHeader, o.ReqBody = q.Header, []byte(q.Body)
		}
		if p := d.Spec.Resp; p != nil {
			o.Status, o.RespHeader, o.RespBody = p.StatusCode, p.Header, []byte(p.Body)
		}
		for k := range d.Spec.Assertions["noise"] {
			o.Noise = append(o.Noise, k)
		}
		sort.Strings(o.Noise)
		for _, p := range d.Spec.GenericRequests {
			o.Requests = append(o.Requests, p.Message...)
		}
		for _, p := range d.Spec.GenericResponses {
			o.Responses = append(o.Responses, p.Message...)
		}
		res = append(res, o)
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: keploy_decode TEST-SET-DIR")
		os.Exit(2)
	}
	files, _ := filepath.Glob(filepath.Join(os.Args[1], "tests", "*.yaml"))
	files = append(files, filepath.Join(os.Args[1], "mocks.yaml"))
	var all []out
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		docs, err := decodeAll(f, bytes.NewReader(b))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		all = append(all, docs...)
	}
	if err := json.NewEncoder(os.Stdout).Encode(all); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

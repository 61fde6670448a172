// Command artifact-server serves a directory over HTTP, as a download site
// does, so the stand-in artifacts reach the image build through the same
// URL + checksum path as the real releases: artifact-server ADDRESS DIR.
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: artifact-server ADDRESS DIRECTORY")
	}
	files := http.FileServer(http.Dir(os.Args[2]))
	handler := http.HandlerFunc(func(writer http.ResponseWriter, request *http.Request) {
		log.Printf("%s %s", request.Method, request.URL.Path)
		files.ServeHTTP(writer, request)
	})
	log.Printf("serving %s on %s", os.Args[2], os.Args[1])
	log.Fatal(http.ListenAndServe(os.Args[1], handler))
}

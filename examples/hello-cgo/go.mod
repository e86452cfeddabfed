module example.com/hello-cgo

go 1.19

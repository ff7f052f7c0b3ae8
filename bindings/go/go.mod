module github.com/zerocore-ai/msbimage/bindings/go

go 1.22

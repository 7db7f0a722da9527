module github.com/mqttas/mqttas-go/mqttas

go 1.26.8

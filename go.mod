module github.com/docker-cr/dockercr

go 1.24.0

require (
	github.com/checkpoint-restore/go-criu/v7 v7.2.0 // indirect
	github.com/moby/sys/mountinfo v0.7.3 // indirect
	golang.org/x/sys v0.50.0 // indirect
	google.golang.org/protobuf v1.34.2 // indirect
)

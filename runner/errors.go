package runner

import "errors"

// Errors of the Runner's operations, wrapped with the details. The REST API
// maps them to status codes.
var (
	ErrInvalid  = errors.New("invalid request") // 400
	ErrNotFound = errors.New("not found")       // 404
	ErrConflict = errors.New("conflict")        // 409: not in this state
	ErrTimeout  = errors.New("timed out")       // 504
	ErrJob      = errors.New("the job refused") // 409: the job process said no
)

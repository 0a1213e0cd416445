package main

import "time"

var epoch = time.Now()

func nowSec() float64 { return time.Since(epoch).Seconds() }

func getPut(string) error           { return nil }
func snapshotSync(string) error     { return nil }
func uploads(string) error          { return nil }
func restores(string) error         { return nil }
func largerThanMemory(string) error { return nil }

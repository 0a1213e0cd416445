package main

// The input is deterministic: line number seq is always the same words, so
// the load generator can be killed and replayed and still write each line once.

import "strings"

var vocabulary = strings.Fields(`alpha bravo charlie delta echo foxtrot golf hotel india juliett
kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu
once flow exactly checkpoint barrier savepoint kafka stream state commit`)

// PerLine is the number of words in a line.
const PerLine = 6

// Line returns line number seq.
func Line(seq uint64) string {
	var b strings.Builder
	x := seq*0x9E3779B97F4A7C15 + 1
	for i := 0; i < PerLine; i++ {
		// xorshift: cheap, deterministic, and spreads the words unevenly
		// enough that counts differ per word.
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocabulary[x%uint64(len(vocabulary))])
	}
	return b.String()
}

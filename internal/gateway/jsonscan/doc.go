// Package jsonscan holds the JSON grammar the gateway's request path checks
// bodies against, without decoding them: Valid for the OpenAI routes, and the
// whitespace and number rules the cache key's canonicaliser reads by. One
// grammar in one place, so that a body the gateway accepts and the key it is
// cached under agree on what JSON is.
package jsonscan

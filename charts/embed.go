// Package charts holds the kmm chart, embedded, so that kmm-render can render the very chart
// it was built with (`kmm-render nodes`).
package charts

import "embed"

// KMM is the kmm chart: the folder kmm/ of this package.
//
//go:embed all:kmm
var KMM embed.FS

// KMMDir is the chart's folder inside KMM.
const KMMDir = "kmm"

module github.com/stokehq/stoke

go 1.26

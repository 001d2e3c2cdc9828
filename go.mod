module github.com/pecet-hsm/pecet

go 1.26.0

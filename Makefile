PREFIX ?= /usr/local
TOOLS := mkfs check dump restore growfs estimate

.PHONY: build install test demo bench clean
build:
	go build -o bin/ ./cmd/...

# Installed as xfskit-<tool> so they never shadow mkfs, dump or restore.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	for t in $(TOOLS); do install -m 0755 bin/$$t $(DESTDIR)$(PREFIX)/bin/xfskit-$$t; done

test:
	scripts/test.sh

demo: build
	scripts/demo.sh

clean:
	rm -rf bin

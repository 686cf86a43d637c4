package main

import (
	"bytes"
	"io"
	"log/slog"
	"testing"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/wire"
)

// TestUpPriceFlags: pocket up takes the controller's price flags, as
// pocket controller does, a price of 0 included, and its controller prices
// at them (its status reply carries them). Before, pocket up had no price
// flags and its controller always ran the default table.
func TestUpPriceFlags(t *testing.T) {
	fs := newFlagSet("up")
	var o upOptions
	o.listen = "127.0.0.1:0"
	o.serve = bindCtlServe(fs)
	o.prices.bind(fs, upPricesHelp)
	if err := fs.Parse([]string{"--insecure", "--data-dir", t.TempDir(), "--price-dram-gib-hour", "0", "--price-gbps-hour", "1"}); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, _, err := startCtl(o, &ownSecret{key: bytes.Repeat([]byte("u"), 32)}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	want := wire.PriceTable{DRAMGiBHour: 0, NVMeGiBHour: controller.DefaultPrices().NVMeGiBHour, GbpsHour: 1}
	if got := ctl.Status().Prices; got == nil || *got != want {
		t.Fatalf("the controller's prices %+v; want %+v (the flags, 0 kept; the default NVMe price)", got, want)
	}
}

package kernel

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sigMagic ends a signed module (the kernel's include/linux/module_signature.h).
const sigMagic = "~Module signature appended~\n"

// sigInfoSize is the size of struct module_signature, which precedes sigMagic: algo, hash,
// id_type, signer_len, key_id_len, 3 bytes of padding and the big-endian length of the
// signature that precedes it.
const sigInfoSize = 12

// pkeyIDPKCS7 is module_signature.id_type of a PKCS#7 (CMS) signature, what sign-file writes.
const pkeyIDPKCS7 = 2

var errUnsigned = errors.New("no module signature (the file does not end with " + strings.TrimSpace(sigMagic) + ")")

// splitSignature splits a signed module into the bytes that are signed and the DER PKCS#7
// signature, as the kernel's mod_verify_sig does.
func splitSignature(mod []byte) (content, sig []byte, err error) {
	if !bytes.HasSuffix(mod, []byte(sigMagic)) {
		return nil, nil, errUnsigned
	}
	rest := mod[:len(mod)-len(sigMagic)]
	if len(rest) < sigInfoSize {
		return nil, nil, fmt.Errorf("truncated module signature")
	}
	info := rest[len(rest)-sigInfoSize:]
	rest = rest[:len(rest)-sigInfoSize]
	if info[2] != pkeyIDPKCS7 {
		return nil, nil, fmt.Errorf("module signature id_type %d, want %d (PKCS#7)", info[2], pkeyIDPKCS7)
	}
	n := binary.BigEndian.Uint32(info[8:12])
	if uint64(n) > uint64(len(rest)) || n == 0 {
		return nil, nil, fmt.Errorf("module signature length %d does not fit the file", n)
	}
	return rest[:len(rest)-int(n)], rest[len(rest)-int(n):], nil
}

// otherKernelVersion returns a kernel version of the same length as v that is not v: its first
// digit moved on by one (6.1.0-56-cloud-amd64 -> 7.1.0-56-cloud-amd64).
func otherKernelVersion(v string) string {
	b := []byte(v)
	for i, c := range b {
		if c >= '0' && c <= '9' {
			b[i] = '0' + (c-'0'+1)%10
			break
		}
	}
	return string(b)
}

// rebrandForKernel turns a module built for kernel into one built for another kernel of the
// same version length, as a module of that kernel would differ from it: its vermagic names the
// other kernel, and the CRCs its __versions section records for the kernel's symbols (module
// versioning, CONFIG_MODVERSIONS) are not this kernel's. Changing the vermagic alone is not
// enough on a kernel with module versioning: the kernel then ignores the version part of the
// vermagic and only checks the CRCs.
func rebrandForKernel(mod []byte, kernel, other string) ([]byte, error) {
	if len(kernel) != len(other) {
		return nil, fmt.Errorf("kernel versions %q and %q differ in length", kernel, other)
	}
	out := bytes.Clone(mod)
	f, err := elf.NewFile(bytes.NewReader(out))
	if err != nil {
		return nil, err
	}
	section := func(name string) ([]byte, bool) {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS || s.Offset+s.Size > uint64(len(out)) {
			return nil, false
		}
		return out[s.Offset : s.Offset+s.Size], true
	}
	modinfo, ok := section(".modinfo")
	if !ok {
		return nil, fmt.Errorf("no .modinfo section")
	}
	old := []byte("vermagic=" + kernel + " ")
	i := bytes.Index(modinfo, old)
	if i < 0 {
		return nil, fmt.Errorf(".modinfo has no %q", old)
	}
	copy(modinfo[i:], "vermagic="+other+" ")
	if versions, ok := section("__versions"); ok {
		// struct modversion_info: an unsigned long CRC, then a 56-byte name (64 bytes on 64-bit).
		const entry = 64
		if len(versions)%entry != 0 || len(versions) == 0 {
			return nil, fmt.Errorf("__versions is %d bytes, not a multiple of %d", len(versions), entry)
		}
		for off := 0; off < len(versions); off += entry {
			crc := f.ByteOrder.Uint32(versions[off:])
			f.ByteOrder.PutUint32(versions[off:], ^crc)
		}
	}
	return out, nil
}

// copyFile copies src to dst, creating dst's folder.
func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}

func TestSplitSignature(t *testing.T) {
	sig := []byte("0\x82DER")
	info := make([]byte, sigInfoSize)
	info[2] = pkeyIDPKCS7
	binary.BigEndian.PutUint32(info[8:], uint32(len(sig)))
	signed := append(append(append([]byte("ELF module"), sig...), info...), sigMagic...)

	content, got, err := splitSignature(signed)
	if err != nil || string(content) != "ELF module" || !bytes.Equal(got, sig) {
		t.Fatalf("splitSignature = %q, %q, %v", content, got, err)
	}
	if _, _, err := splitSignature([]byte("ELF module")); !errors.Is(err, errUnsigned) {
		t.Errorf("an unsigned module: %v, want errUnsigned", err)
	}
	binary.BigEndian.PutUint32(info[8:], 1000)
	if _, _, err := splitSignature(append(append([]byte("x"), info...), sigMagic...)); err == nil {
		t.Error("a signature longer than the file is accepted")
	}
	if got := otherKernelVersion("6.1.0-56-cloud-amd64"); got != "7.1.0-56-cloud-amd64" {
		t.Errorf("otherKernelVersion = %q", got)
	}
	if got := otherKernelVersion("9.0"); got != "0.0" {
		t.Errorf("otherKernelVersion = %q", got)
	}
}

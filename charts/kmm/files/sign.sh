#!/bin/sh
# sign.sh: signs kernel modules with the kernel's sign-file (KMM sign semantics).
# Runs in the sign image (KMM's signimage has /usr/local/bin/sign-file), from
# sign.Dockerfile or from a signing container next to a node build. Needs only a
# POSIX sh (busybox sh, dash, bash) and sign-file.
#
# Environment (lists are newline-separated, empty lines are ignored):
#   KMM_ROOT                prefix of the image tree (default empty)
#   KMM_DIR_NAME            modprobe.dirName (default /opt)
#   KMM_FILES_TO_SIGN       list of absolute paths or shell globs in the image tree (sign.filesToSign);
#                           each must match at least one file under KMM_ROOT
#   KMM_FILES_TO_SIGN_FILE  file with one path or glob a line; replaces KMM_FILES_TO_SIGN when set
#                           When both are empty, every *.ko under $KMM_ROOT$KMM_DIR_NAME/lib/modules/
#                           is signed.
#   KMM_SIGN_KEY            private key (default /kmm/sign/key/key.pem; Secret sign.keySecret, key "key")
#   KMM_SIGN_CERT           certificate (default /kmm/sign/cert/cert.pem; Secret sign.certSecret,
#                           key "cert")
#   KMM_SIGN_FILE           sign-file program (default: sign-file on PATH, else /usr/local/bin/sign-file)
# Compressed modules (.ko.xz, .ko.zst, .ko.gz) are an error: sign-file cannot sign them.
set -eu

log() { printf 'kmm: %s\n' "$*"; }
die() {
	printf 'kmm: %s\n' "$*" >&2
	exit 1
}

KMM_ROOT=${KMM_ROOT:-}
KMM_DIR_NAME=${KMM_DIR_NAME:-/opt}
KMM_FILES_TO_SIGN=${KMM_FILES_TO_SIGN:-}
KMM_FILES_TO_SIGN_FILE=${KMM_FILES_TO_SIGN_FILE:-}
KMM_SIGN_KEY=${KMM_SIGN_KEY:-/kmm/sign/key/key.pem}
KMM_SIGN_CERT=${KMM_SIGN_CERT:-/kmm/sign/cert/cert.pem}
KMM_SIGN_FILE=${KMM_SIGN_FILE:-}

if [ -z "$KMM_SIGN_FILE" ]; then
	KMM_SIGN_FILE=$(command -v sign-file 2>/dev/null) || KMM_SIGN_FILE=/usr/local/bin/sign-file
fi
case $KMM_SIGN_FILE in
*/*) [ -x "$KMM_SIGN_FILE" ] || die "$KMM_SIGN_FILE is not an executable file: use a sign image that has sign-file, or set KMM_SIGN_FILE" ;;
*) command -v "$KMM_SIGN_FILE" >/dev/null 2>&1 || die "$KMM_SIGN_FILE is not on PATH: use a sign image that has sign-file, or set KMM_SIGN_FILE" ;;
esac
[ -f "$KMM_SIGN_KEY" ] || die "signing key $KMM_SIGN_KEY does not exist: it comes from the Secret named by sign.keySecret (key \"key\")"
[ -f "$KMM_SIGN_CERT" ] || die "signing certificate $KMM_SIGN_CERT does not exist: it comes from the Secret named by sign.certSecret (key \"cert\")"

if [ -n "$KMM_FILES_TO_SIGN_FILE" ]; then
	[ -f "$KMM_FILES_TO_SIGN_FILE" ] || die "the list of files to sign $KMM_FILES_TO_SIGN_FILE does not exist"
	patterns=$(cat "$KMM_FILES_TO_SIGN_FILE") || die "could not read $KMM_FILES_TO_SIGN_FILE"
else
	patterns=$KMM_FILES_TO_SIGN
fi
set --
while IFS= read -r line; do
	if [ -n "$line" ]; then set -- "$@" "$line"; fi
done <<EOF
$patterns
EOF

nl='
'
files=
# add FILE: appends FILE to files once; compressed modules are an error.
add() {
	case $1 in
	*.ko.xz | *.ko.zst | *.ko.gz)
		die "${1#"$KMM_ROOT"} is compressed: sign-file cannot sign compressed modules; sign the .ko before compressing it, or do not compress it"
		;;
	esac
	case $nl$files in
	*"$nl$1$nl"*) ;;
	*) files=$files$1$nl ;;
	esac
}

# walk DIR: prints the modules under DIR, symbolic links not followed.
walk() (
	for f in "$1"/*; do
		if [ -L "$f" ]; then
			continue
		elif [ -d "$f" ]; then
			walk "$f"
		elif [ -f "$f" ]; then
			case $f in
			*.ko | *.ko.xz | *.ko.zst | *.ko.gz) printf '%s\n' "$f" ;;
			esac
		fi
	done
)

if [ "$#" -eq 0 ]; then
	top=$KMM_ROOT$KMM_DIR_NAME/lib/modules
	[ -d "$top" ] || die "$top does not exist: nothing to sign (check dirName and the build)"
	found=$(walk "$top")
	while IFS= read -r f; do
		if [ -n "$f" ]; then add "$f"; fi
	done <<EOF
$found
EOF
	[ -n "$files" ] || die "no *.ko file under $top: nothing to sign (check dirName and the build)"
else
	for pattern in "$@"; do
		case $pattern in
		/*) ;;
		*) die "filesToSign entry $pattern is not an absolute path: write it as in the image, e.g. $KMM_DIR_NAME/lib/modules/<kernel>/<module>.ko" ;;
		esac
		matched=false
		# The pattern is expanded as a glob, never split on blanks.
		old_ifs=$IFS
		IFS=
		# shellcheck disable=SC2231 # the pattern is a glob on purpose
		for f in "$KMM_ROOT"$pattern; do
			if [ -f "$f" ]; then
				matched=true
				add "$f"
			fi
		done
		IFS=$old_ifs
		[ "$matched" = true ] || die "filesToSign entry $pattern matches no file under ${KMM_ROOT:-/}: fix sign.filesToSign or the build"
	done
fi

while IFS= read -r f; do
	[ -n "$f" ] || continue
	"$KMM_SIGN_FILE" sha256 "$KMM_SIGN_KEY" "$KMM_SIGN_CERT" "$f" </dev/null ||
		die "sign-file failed for ${f#"$KMM_ROOT"}: check that the key and the certificate match (see the message above)"
	log "signed ${f#"$KMM_ROOT"}"
done <<EOF
$files
EOF

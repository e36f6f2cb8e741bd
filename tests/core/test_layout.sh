#!/usr/bin/env bash
# The architecture's rules (docs/ARCHITECTURE.md), checked on the sources: which folder may
# include which, own header first, and one owner for the atomic writer, the agreement on
# errors, the path limit, the pipeline's folders and the shards reader.
source "$(dirname "$0")/../lib.sh"
S=core/layout
cd "$(dirname "$0")/../.."

# ---- folder dependencies ----
declare -A allowed=( # folder -> the folders it may use (besides itself)
    [core]="" [parallel]="core" [io]="core parallel image" [image]="core" [nn]="core"
    [model]="core nn io" [probe]="core parallel"
    [synth]="core parallel io image" [preprocess]="core parallel io image"
    [shard]="core parallel io image"
    [train]="core parallel io image nn model shard"
    [analyze]="core parallel io probe shard"
    [embed]="core parallel io image nn model preprocess shard train"
    [apps]="core synth preprocess shard train embed analyze")
# the folder owning a public header: the folder of the .c file of the same name, else listed
declare -A owner=([threads.h]=core [error.h]=core [app.h]=core [reduce.h]=parallel [image.h]=image
                  [nn.h]=nn [heads.h]=model [probe.h]=probe [analyze.h]=analyze
                  [findings.h]=io)
for c in src/*/*.c; do
    h=$(basename "$c" .c).h
    [ -n "${owner[$h]:-}" ] || owner[$h]=$(basename "$(dirname "$c")")
done
bad=()
while IFS= read -r line; do
    file=${line%%:*} header=${line##*rdino/}
    header=${header%\"*}
    case $file in
        include/rdino/*) base=${file##*/}; folder=${owner[$base]:-?} ;;
        *) folder=${file#src/}; folder=${folder%%/*} ;;
    esac
    target=${owner[$header]:-?}
    [ "$target" = "$folder" ] && continue
    case " ${allowed[$folder]-UNKNOWN} " in
        *" $target "*) ;;
        *) bad+=("$file includes rdino/$header ($folder -> $target)") ;;
    esac
done < <(grep -rn '#include "rdino/' src include | sed 's/:[0-9]*:#include /:/')
if [ "${#bad[@]}" -eq 0 ]; then rd_pass "$S/no_upward_includes"
else rd_fail "$S/no_upward_includes" "$(printf '%s; ' "${bad[@]}" | head -c 1500)"; fi

# ---- every .c file with a header of its own name includes it first ----
bad=()
for f in src/*/*.c; do
    stem=$(basename "$f" .c)
    own=""
    [ -f "include/rdino/$stem.h" ] && own="rdino/$stem.h"
    [ -f "$(dirname "$f")/$stem.h" ] && own="$stem.h"
    [ -z "$own" ] && continue
    first=$(grep -m1 '^#include' "$f")
    [ "$first" = "#include \"$own\"" ] || bad+=("$f starts with $first")
done
if [ "${#bad[@]}" -eq 0 ]; then rd_pass "$S/own_header_first"
else rd_fail "$S/own_header_first" "$(printf '%s; ' "${bad[@]}")"; fi

# ---- one owner per concept ----
one_owner() { # NAME PATTERN ALLOWED-FILES... : the pattern occurs only in the allowed files
    local name=$1 pattern=$2; shift 2
    local found extra=()
    found=$(grep -rlE --include='*.c' --include='*.h' "$pattern" src include | sort)
    for f in $found; do
        case " $* " in *" $f "*) ;; *) extra+=("$f") ;; esac
    done
    if [ "${#extra[@]}" -eq 0 ]; then rd_pass "$S/$name"
    else rd_fail "$S/$name" "also in: ${extra[*]}"; fi
}
# publication by rename: core/file.c; pretrain.c only moves folders and damaged files aside
one_owner one_atomic_writer '^[^/*]*[^_a-z/]rename\(' src/core/file.c src/train/pretrain.c
one_owner one_error_agreement 'MPI_MAXLOC|MPI_MINLOC' src/parallel/agree.c
one_owner one_path_limit 'PATH[A-Z_]* *= *4096|(path|dir|tmp)[a-z_]*\[4096\]' include/rdino/file.h
one_owner one_pipeline_layout '"data\.output_dir"' src/core/paths.c src/core/config_schema.c
# the shards folder is read through rd_shard_set (src/shard/shard_reader.c) only
one_owner one_shards_reader 'index\.json' src/shard/shard.c src/shard/shard_reader.c \
    src/shard/shard_check.h src/shard/shard_stage.c include/rdino/shard.h \
    include/rdino/shard_reader.h include/rdino/file.h
if grep -q 'rdino/app.h' $(ls src/*/*.c | grep -v '^src/apps/\|^src/core/app.c'); then
    rd_fail "$S/library_does_not_include_the_program_shell" \
        "$(grep -l 'rdino/app.h' $(ls src/*/*.c | grep -v '^src/apps/\|^src/core/app.c'))"
else rd_pass "$S/library_does_not_include_the_program_shell"; fi

# ---- thin programs: start, stage, finish ----
long=()
for f in src/apps/*.c; do
    n=$(awk '/^int main/,/^}/' "$f" | wc -l)
    [ "$n" -le 30 ] || long+=("$f: main() has $n lines")
done
if [ "${#long[@]}" -eq 0 ]; then rd_pass "$S/thin_programs"
else rd_fail "$S/thin_programs" "${long[*]}"; fi

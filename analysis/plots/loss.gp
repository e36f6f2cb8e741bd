# Pretraining loss terms against the step (metrics.jsonl).
# Set by rdino-analyze: outfile, datafile (column 1: step; column i + 1: term i, NaN where a line
# lacks it), and array labels[n] (the terms' names).
load plots_dir.'/style.gp'
set terminal pngcairo noenhanced size 900,560 font font_spec
set output outfile
set title 'Pretraining loss terms (metrics.jsonl)'
set xlabel 'step'
set ylabel 'loss'
set datafile missing 'NaN'
set key outside right top
plot for [i=1:|labels|] datafile using 1:(column(i + 1)) with lines lw 2 title labels[i]
unset output

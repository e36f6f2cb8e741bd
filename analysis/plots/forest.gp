# Runs side by side (rdino-analyze with analyze.compare): one target's effect in every run and
# representation, each with its interval, a dashed line at chance.
# Set by rdino-analyze: outfile, datafile (columns: row number, estimate, lo, hi), plot_title,
# metric_name, chance, and array labels[n] (row i's "run: representation").
load plots_dir.'/style.gp'
set terminal pngcairo noenhanced size 980, 140 + 26 * |labels| font font_spec
set output outfile
set title plot_title
set xlabel metric_name
set yrange [|labels| + 0.5:0.5]
set ytics scale 0
do for [i=1:|labels|] { set ytics add (labels[i] i) }
set arrow from chance, graph 0 to chance, graph 1 nohead dt 2 lc rgb 'gray40'
plot datafile using 2:1:3:4 with xerrorbars pt 7 ps 0.9 lc rgb '#2060a0' notitle
unset output

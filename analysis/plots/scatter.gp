# Predicted against true values of a numeric target, one panel per representation.
# Set by rdino-analyze: outfile, datafile (column 1: the truth; column cols[i]: the out-of-fold
# predictions of panel i), plot_title, target_name, lo and hi (the axis range), panel_rows and
# panel_cols (the panel layout), and arrays titles[n], cols[n].
load plots_dir.'/style.gp'
set terminal pngcairo noenhanced size 480 * panel_cols, 500 * panel_rows + 40 font font_spec
set output outfile
set multiplot layout panel_rows, panel_cols title plot_title
set size ratio -1
set xrange [lo:hi]
set yrange [lo:hi]
set xlabel 'true '.target_name
set ylabel 'predicted '.target_name
do for [i=1:|titles|] {
    set title titles[i]
    plot datafile using 1:(column(cols[i])) with points pt 7 ps 0.45 lc rgb '#2060a0' notitle, \
         x with lines dt 2 lw 1.5 lc rgb 'gray40' notitle
}
unset multiplot
unset output

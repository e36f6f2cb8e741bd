# ROC curves of a 0/1 target, one per representation, each the mean of the outer folds' ROCs.
# Set by rdino-analyze: outfile, datafile (column 1: false-positive rate; column cols[i]: the
# true-positive rate of series i), plot_title, and arrays labels[n], cols[n].
load plots_dir.'/style.gp'
set terminal pngcairo noenhanced size 760,700 font font_spec
set output outfile
set title plot_title
set xlabel 'false positive rate'
set ylabel 'true positive rate'
set size ratio -1
set xrange [0:1]
set yrange [0:1]
set key bottom right box opaque
plot for [i=1:|labels|] datafile using 1:(column(cols[i])) with lines lw 2.5 lt i title labels[i], \
     x with lines dt 2 lw 1.5 lc rgb 'gray50' title 'chance'
unset output

# The main representation's embeddings on their first two principal components, by sex.
# Set by rdino-analyze: outfile, datafile (columns: PC 1, PC 2, sex 0 F / 1 M / -1 unknown,
# age or -1), plot_title, xlabel_text, ylabel_text.
load plots_dir.'/style.gp'
set terminal pngcairo noenhanced size 760,720 font font_spec
set output outfile
set title plot_title
set xlabel xlabel_text
set ylabel ylabel_text
set key below horizontal
plot datafile using 1:($3==0?$2:1/0) with points pt 7 ps 0.6 lc rgb '#d62728' title 'female', \
     datafile using 1:($3==1?$2:1/0) with points pt 7 ps 0.6 lc rgb '#1f77b4' title 'male', \
     datafile using 1:($3<0?$2:1/0) with points pt 7 ps 0.6 lc rgb 'gray60' title 'unknown'
unset output

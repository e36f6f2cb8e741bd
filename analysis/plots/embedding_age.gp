# The main representation's embeddings on their first two principal components, by age.
# Set by rdino-analyze: as for embedding_sex.gp.
load plots_dir.'/style.gp'
set terminal pngcairo noenhanced size 800,700 font font_spec
set output outfile
set title plot_title
set xlabel xlabel_text
set ylabel ylabel_text
set cblabel 'age (years)'
set palette defined (0 '#440154', 1 '#3b528b', 2 '#21918c', 3 '#5ec962', 4 '#fde725')
plot datafile using 1:($4>=0?$2:1/0):4 with points pt 7 ps 0.6 palette notitle
unset output

#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora, tests/fuzz/corpus/<target>/ (run from tests/fuzz/;
Pillow and numpy). Small valid inputs of every kind each reader accepts; libFuzzer mutates them."""
import io
import json
import os
import struct

import numpy as np
from PIL import Image

C = "corpus/"
rng = np.random.default_rng(1)


def write(path, data):
    os.makedirs(os.path.dirname(C + path), exist_ok=True)
    with open(C + path, "wb") as f:
        f.write(data)


def png(name, img, **kw):
    b = io.BytesIO()
    img.save(b, format="PNG", **kw)
    write("png/" + name, b.getvalue())


g8 = rng.integers(0, 256, (6, 5), dtype=np.uint8)
png("grey8.png", Image.fromarray(g8))
png("grey16.png", Image.fromarray(rng.integers(0, 65536, (4, 7)).astype(np.uint16), mode="I;16"))
png("rgb.png", Image.fromarray(rng.integers(0, 256, (5, 4, 3), dtype=np.uint8), "RGB"))
png("rgba.png", Image.fromarray(rng.integers(0, 256, (3, 3, 4), dtype=np.uint8), "RGBA"))
png("la.png", Image.fromarray(rng.integers(0, 256, (3, 4, 2), dtype=np.uint8), "LA"))
png("bilevel.png", Image.fromarray(g8).convert("1"))
rgb = Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8), "RGB")
png("palette2.png", rgb.convert("P", palette=Image.ADAPTIVE, colors=4), bits=2)
png("palette8.png", rgb.convert("P"))

# metadata: the first byte picks the dialect (its value modulo 5: 0 nih, 1 chexpert, 2 padchest,
# 3 mimic, 4 generic) and the finding label policy and columns (fuzz_metadata.c); mimic's
# patients.csv follows a NUL byte, its findings CSV another.
NIH = (b"Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
       b"View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
write("metadata/nih_2017.csv", b"\x00\xEF\xBB\xBF" + NIH + b",\r\n"
      b"00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143,\r\n"
      b"00000001_001.png,Emphysema,1,1,060Y,M,PA,2894,2729,0.143,0.143,\r\n\r\n"
      b"00000004_000.png,Mass,0,4,82,M,AP,2500,2048\r\n"
      b"\"00000005_000.png\",\"No Finding\",0,5,,F,pa,2048,2500,0.168,0.168,\r\n")
write("metadata/nih_2020.csv", b"\x00" + NIH + b"\n"
      b"00000002_000.png,No Finding,0,2,80,M,PA,2500,2048,0.171,0.171\n"
      b"00000002_000.png,Dup,0,2,413,X,AP,1,1,1,1\n")
write("metadata/chexpert.csv", b"\x01Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding\n"
      b"CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0\n"
      b"CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg,Male,87,Lateral,,\n"
      b"CheXpert-v1.0-small/valid/patient00003/study1/view1_frontal.jpg,Unknown,0,Frontal,PA,\n")
write("metadata/padchest.csv", b"\x02ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,"
      b"PatientBirth,PatientSex_DICOM,ViewPosition_DICOM,Projection,Labels\n"
      b"img1.png,0,20150314,s1,p1,1945.0,M,POSTEROANTERIOR,PA,\"['normal']\"\n"
      b"img2.png,0,20120101,s2,p2,,F,LL,L,\"['a', 'b']\"\n"
      b"img4.png,1,2010,s4,p4,1930,O,,AP_horizontal,[]\n")
write("metadata/mimic.csv", b"\x03dicom_id,subject_id,study_id,PerformedProcedureStepDescription,"
      b"ViewPosition,Rows,Columns,StudyDate,StudyTime\n"
      b"02aa804e-bde0afdd,10000032,50414267,CHEST (PA AND LAT),PA,3056,2544,21800506,213014.531\n"
      b"abc,10000764,57375967,CHEST,AP,2705,2539,21320723,80556.875\n"
      b"def,19999999,51111111,,AP,1,1,21500101,0\n"
      b"\x00subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n"
      b"10000764,M,86,2132,2014 - 2016,\n10000032,F,52,2180,2014 - 2016,2180-09-09\nbad,M,x,y,,\n")
write("metadata/generic.csv", b"\x04image,patient,age,sex,extra\na/1.png,P1,45,F,x\n"
      b"\"b/2,3.png\",P2,,m,\"quoted \"\"y\"\"\"\nc.png,,200,?,\n")
# finding labels: every cell value and NIH spelling, under the other policies (U-Ones, blank
# unknown: first byte 5 * 2 + 15 = 25 + dialect)
write("metadata/findings_nih.csv", b"\x19" + NIH + b"\n"
      b"a.png,Effusion|pleural thickening| Hernia ,0,1,50,M,PA,1,1,1,1\n"
      b"b.png,Pneumonia|Covid-19,0,2,50,F,AP,1,1,1,1\nc.png,,0,3,50,F,AP,1,1,1,1\n")
write("metadata/findings_chexpert.csv", b"\x1aPath,Sex,Age,Frontal/Lateral,AP/PA,No Finding,"
      b"Cardiomegaly,Edema,Pleural Effusion\n"
      b"train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,\n"
      b"train/patient00002/study1/view1_frontal.jpg,Male,70,Frontal,PA,,1.0,-1.0,0.0\n"
      b"train/patient00003/study1/view1_frontal.jpg,Male,70,Frontal,PA,,-1,1,maybe\n")
write("metadata/findings_mimic.csv", b"\x08dicom_id,subject_id,study_id,ViewPosition,StudyDate\n"
      b"a1,10000032,50414267,PA,21800506\nb1,10000032,53189527,AP,21810101\n"
      b"c1,10000032,56699142,AP,21820101\n"
      b"\x00subject_id,gender,anchor_age,anchor_year\n10000032,F,52,2180\n"
      b"\x00subject_id,study_id,Atelectasis,Cardiomegaly,No Finding,Pneumothorax\n"
      b"10000032,50414267,,,1.0,\n10000032,53189527,-1.0,1.0,,0.0\n10000032,x,1.0,,,\n")
write("metadata/findings_generic.csv", b"\x22image,patient,age,sex,label\n"
      b"a.png,P1,45,F,1\nb.png,P2,50,M,-1.0\nc.png,P3,55,M,\nd.png,P4,60,F,yes\n")

# config: YAML, then after a NUL byte one key=value override per line
write("config/pretrain.yaml", b"data:\n  output_dir: out\n  format: nih\npretrain:\n"
      b"  max_steps: 10\n  checkpoint_every: 3\n  threads: 1\n"
      b"\x00pretrain.max_steps=20\ntrain.centering=centering\n")
write("config/lists.yaml", b"# comment\ncrops:\n  global_crops_scale: [0.32, 1.0]\n"
      b"  local_crops_number: 8\noptim:\n  lr: 0.004\n\x00crops.global_crops_scale=[0.5, 1]\n")
write("config/flow.yaml", b"{data: {output_dir: \"a b\", format: generic}, "
      b"embed: {on_corrupt: skip}}\n")

write("manifest/manifest.csv", b"image_id,file,patient_id,age,sex,view,width,height,source_row\n"
      b"img1,images/img1.png,p1,58.5,M,PA,64,64,2\n\"img,2\",images/img2.png,p2,,F,AP,64,64,3\n"
      b"img3,images/img3.png,p3,40,,,64,64,5\n")
write("manifest/findings.csv", b"image_id,file,patient_id,age,sex,view,width,height,source_row,"
      b"finding_mass,finding_no_finding\nimg1,images/img1.png,p1,58.5,M,PA,64,64,2,1,0\n"
      b"img2,images/img2.png,p2,,F,AP,64,64,3,,1\nimg3,images/img3.png,p3,40,,,64,64,5,0,\n")
write("manifest/no_source_row.csv",
      b"file,image_id,patient_id,age,sex,view,width,height\nx.png,x,p,,,,8,8\n")

shards = [{"file": "shard-00000.h5", "first_row": 0, "num_images": 2, "meta_sha256": "0" * 64},
          {"file": "shard-00001.h5", "first_row": 2, "num_images": 1, "meta_sha256": "ab" * 32}]
write("shard_index/index.json", json.dumps(
    {"format_version": 2, "num_shards": 2, "num_images": 3, "shards": shards}, indent=2).encode())
write("shard_index/v1.json", json.dumps(
    {"format_version": 1, "num_shards": 1, "num_images": 2, "shards": shards[:1]}).encode())


def safetensors(name, tensors, meta=None):
    header, data = {}, b""
    if meta:
        header["__metadata__"] = meta
    for key, (dtype, shape, raw) in tensors.items():
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    write("safetensors/" + name, struct.pack("<Q", len(h)) + h + data)


safetensors("f32.safetensors", {"a.weight": ("F32", [2, 3], np.arange(6, dtype=np.float32).tobytes()),
                                "b": ("F32", [], np.float32(1.5).tobytes())}, {"format": "pt"})
safetensors("half.safetensors", {"h": ("F16", [3], np.array([1, -2, 65504], np.float16).tobytes()),
                                 "bf": ("BF16", [2], b"\x80\x3f\x00\xc0"),
                                 "i": ("I64", [1], b"\x01" + b"\x00" * 7),
                                 "e": ("F32", [0, 4], b"")})


def embeddings(name, flags, n, n2, d, width, rows, x):
    """The byte layout fuzz_embeddings.c reads: flags, rows, shape, per row (split, sex, age, id,
    patient), then the features."""
    out = bytes([flags, n | n2 << 4, (d - 1) | (width - 1) << 3])
    for split, sex, age, ident, patient in rows:
        out += bytes([split, sex + 1]) + struct.pack("<f", age) + bytes([ident, patient])
    write("embeddings/" + name, out + np.asarray(x, np.float32).tobytes())


ROWS = [(0, 0, 50.0, 1, 1), (0, 1, 60.0, 2, 2), (1, -1, float("nan"), 3, 3), (2, 1, 30.0, 4, 1)]
embeddings("one_file.bin", 0x03, 4, 0, 3, 4, ROWS, rng.normal(size=12))
embeddings("two_files.bin", 0x05, 4, 0, 2, 4, ROWS, rng.normal(size=8))
embeddings("nan_feature.bin", 0x01, 4, 0, 2, 4, ROWS, [1, 2, 3, float("nan"), 5, 6, 7, 8])

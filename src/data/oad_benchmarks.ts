// The video lists and class names of the two benchmarks OadTR reports on, in the order of the
// official code's data/data_info_new.json (THUMOS'14: trained on its validation videos, tested on
// its test videos; TVSeries: the episodes of each split). The order is kept: the official
// evaluation reads the test videos in this order.

/** THUMOS'14 video numbers, named video_validation_%07d (train) and video_test_%07d (test). */
const THUMOS_TRAIN = [
  690, 288, 289, 416, 282, 283, 281, 286, 287, 284, 285, 202, 203, 201, 206, 207, 204, 205, 790,
  208, 209, 420, 364, 853, 950, 937, 367, 290, 210, 59, 58, 57, 56, 55, 54, 53, 52, 51, 933, 949,
  948, 945, 944, 947, 946, 941, 940, 190, 942, 261, 262, 263, 264, 265, 266, 267, 268, 269, 989, 60,
  370, 938, 935, 668, 669, 664, 665, 932, 667, 934, 661, 662, 663, 181, 180, 183, 182, 185, 184,
  187, 186, 189, 188, 936, 270, 854, 178, 179, 174, 175, 176, 177, 170, 171, 172, 173, 670, 419,
  943, 485, 369, 368, 318, 319, 415, 414, 413, 412, 411, 311, 312, 313, 314, 315, 316, 317, 418,
  365, 482, 169, 168, 167, 166, 165, 164, 163, 162, 161, 160, 857, 856, 855, 366, 488, 489, 851,
  484, 361, 486, 487, 481, 910, 483, 363, 990, 939, 362, 987, 859, 787, 786, 785, 784, 783, 782,
  781, 981, 983, 982, 985, 984, 417, 788, 152, 153, 151, 156, 157, 154, 155, 158, 159, 901, 903,
  902, 905, 904, 907, 906, 909, 908, 490, 860, 858, 988, 320, 688, 689, 686, 687, 684, 685, 682,
  683, 681, 789, 986, 931, 852, 666,
];
const THUMOS_TEST = [
  292, 1078, 896, 897, 950, 1159, 1079, 807, 179, 173, 1072, 1075, 767, 1076, 7, 6, 556, 1307, 1153,
  718, 716, 1309, 714, 558, 1267, 367, 1324, 85, 887, 1281, 882, 671, 964, 1164, 1114, 771, 1163,
  1118, 1201, 1040, 1207, 723, 569, 672, 673, 278, 1162, 405, 73, 560, 1276, 270, 273, 374, 372,
  1168, 379, 1446, 1447, 1098, 873, 39, 442, 1219, 762, 611, 617, 615, 1270, 740, 293, 504, 505,
  665, 664, 577, 814, 1369, 1194, 1195, 1512, 1235, 1459, 691, 765, 1452, 188, 591, 1268, 593, 864,
  601, 1135, 4, 903, 285, 1174, 46, 45, 1223, 1358, 1134, 698, 461, 1182, 450, 602, 1229, 989, 357,
  1039, 355, 353, 1508, 981, 242, 854, 1484, 635, 1129, 1339, 1483, 1123, 1127, 689, 756, 1431, 129,
  1433, 1343, 324, 1064, 1531, 1532, 413, 991, 1255, 464, 1202, 1080, 1081, 847, 28, 844, 622, 26,
  1325, 1496, 1495, 624, 724, 1409, 131, 448, 444, 443, 1038, 238, 1527, 1522, 51, 1058, 1391, 429,
  426, 785, 786, 1314, 392, 423, 1146, 1313, 1008, 1247, 737, 1319, 308, 730, 58, 538, 1556, 113,
  626, 839, 220, 1389, 437, 940, 211, 946, 1558, 796, 62, 793, 987, 1066, 412, 798, 1549, 11, 1257,
  541, 701, 250, 254, 549, 1209, 1463, 1460, 319, 1468, 846, 1292,
];

const thumosName = (prefix: string) => (n: number): string => prefix + String(n).padStart(7, '0');

/** A benchmark's classes (background first), its ambiguous class, and its official splits. */
export interface OadBenchmark {
  readonly classNames: readonly string[];
  readonly ambiguousClass: number | null;
  readonly train: readonly string[];
  readonly test: readonly string[];
}

export const OAD_BENCHMARKS: Readonly<Record<'thumos14' | 'tvseries', OadBenchmark>> = {
  thumos14: {
    classNames: [
      'Background', 'BaseballPitch', 'BasketballDunk', 'Billiards', 'CleanAndJerk', 'CliffDiving',
      'CricketBowling', 'CricketShot', 'Diving', 'FrisbeeCatch', 'GolfSwing', 'HammerThrow',
      'HighJump', 'JavelinThrow', 'LongJump', 'PoleVault', 'Shotput', 'SoccerPenalty',
      'TennisSwing', 'ThrowDiscus', 'VolleyballSpiking', 'Ambiguous',
    ],
    ambiguousClass: 21,
    train: THUMOS_TRAIN.map(thumosName('video_validation_')),
    test: THUMOS_TEST.map(thumosName('video_test_')),
  },
  tvseries: {
    classNames: [
      'background', 'Pick something up', 'Point', 'Drink', 'Stand up', 'Run', 'Sit down', 'Read',
      'Smoke', 'Drive car', 'Open door', 'Give something', 'Use computer', 'Write',
      'Go down stairway', 'Close door', 'Throw something', 'Go up stairway', 'Get in/out of car',
      'Hang up phone', 'Eat', 'Answer phone', 'Dress up', 'Clap', 'Undress', 'Kiss', 'Fall/trip',
      'Wave', 'Pour', 'Punch', 'Fire weapon',
    ],
    ambiguousClass: null,
    train: [
      '24_ep1', '24_ep2', '24_ep3', 'Breaking_Bad_ep1', 'Breaking_Bad_ep2',
      'How_I_Met_Your_Mother_ep1', 'How_I_Met_Your_Mother_ep2', 'How_I_Met_Your_Mother_ep3',
      'How_I_Met_Your_Mother_ep4', 'How_I_Met_Your_Mother_ep5', 'How_I_Met_Your_Mother_ep6',
      'Mad_Men_ep1', 'Mad_Men_ep2', 'Modern_Family_ep1', 'Modern_Family_ep2', 'Modern_Family_ep3',
      'Modern_Family_ep4', 'Modern_Family_ep6', 'Sons_of_Anarchy_ep1', 'Sons_of_Anarchy_ep2',
    ],
    test: [
      '24_ep4', 'Breaking_Bad_ep3', 'Mad_Men_ep3', 'How_I_Met_Your_Mother_ep7',
      'How_I_Met_Your_Mother_ep8', 'Modern_Family_ep5', 'Sons_of_Anarchy_ep3',
    ],
  },
};
